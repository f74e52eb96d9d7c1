"""Jifen tasks: governance jobs, claims, completions and their verification; the source of
truth for why points are owed."""
