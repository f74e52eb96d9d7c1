"""Pure audit rules (no I/O): RFC 6962 hashing and proofs, canonical leaves, checkpoints,
verification and reconciliation logic. Everything here can be re-implemented by a union."""
