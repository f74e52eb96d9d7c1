"""`make bench`: Jifen's throughput and latency, each next to a reference measured in the same run."""
