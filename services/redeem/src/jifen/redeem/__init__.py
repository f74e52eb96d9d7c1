"""Jifen redeem: the points supermarket. The only service that decides to spend points."""
