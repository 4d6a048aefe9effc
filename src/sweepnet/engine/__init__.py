"""The plan and its execution: buckets, calls, compiled programs, many hosts."""
