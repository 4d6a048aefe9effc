"""What a user looks at: charts, network pictures, the report, explore, animate."""
