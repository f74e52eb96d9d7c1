"""Union integrity audits: the Merkle tree over the ledger, signed checkpoints, proofs, export,
the offline verifier, witnesses, reconciliation and the report (docs/AUDIT.md)."""
