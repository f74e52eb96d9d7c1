"""Jifen points: the append-only ledger, its worker, balances and (later) the audit API."""
