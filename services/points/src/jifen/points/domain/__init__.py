"""Pure ledger rules: no I/O, no framework imports."""
