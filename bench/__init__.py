"""`make bench`: Jifen's throughput and latency, each beside a same-run reference."""
