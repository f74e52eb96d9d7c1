"""Jifen's shared kernel: only what all three services share identically."""
