"""The plan and its execution: buckets, calls, compiled programs, many hosts, and the adaptive
search that chooses which cells to train."""
