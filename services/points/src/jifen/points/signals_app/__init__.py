"""The integrity-signals process (``python -m jifen.points signals``): a faust app tallying
verified completions into live flags. Not the ledger's consumer, which is ``worker.py``."""
