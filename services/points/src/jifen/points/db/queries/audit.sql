-- name: audit_sequencer_lock
SELECT pg_try_advisory_xact_lock(7261601);

-- name: audit_checkpoint_lock
SELECT pg_advisory_xact_lock(7261602);

-- name: audit_tree_size
SELECT coalesce(max(position) + 1, 0) AS size FROM merkle_leaf;

-- name: audit_unplaced_entries
-- Committed entries without a position yet, oldest id first (so one account's entries keep
-- their chain order: a later batch of an account always has higher ids). $2 = 0 looks at
-- the whole ledger; a recent floor keeps the frequent pass to an index range.
SELECT e.id AS entry_id, e.account_id, e.account_seq, e.kind, e.amount, e.balance_after,
       e.org_id, e.category, e.cause_event_id::text, e.cause_type, e.job_id::text,
       e.completion_id::text, e.redemption_id::text, e.occurred_at, e.recorded_at,
       e.prev_hash, e.entry_hash
FROM ledger_entry e
WHERE e.id > $2 AND NOT EXISTS (SELECT 1 FROM merkle_leaf l WHERE l.entry_id = e.id)
ORDER BY e.id
LIMIT $1;

-- name: audit_max_placed_entry
SELECT coalesce(max(entry_id), 0) FROM merkle_leaf;

-- name: audit_nodes
SELECT n.level, n.idx, n.hash
FROM merkle_node n
JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx;

-- name: audit_latest_checkpoint
SELECT tree_size, root_hash, issued_at, key_id, signature, origin
FROM audit_checkpoint ORDER BY tree_size DESC LIMIT 1;

-- name: audit_checkpoint_at
SELECT tree_size, root_hash, issued_at, key_id, signature, origin
FROM audit_checkpoint WHERE tree_size = $1;

-- name: audit_checkpoints_page
SELECT tree_size, root_hash, issued_at, key_id, signature, origin
FROM audit_checkpoint WHERE tree_size < $1 ORDER BY tree_size DESC LIMIT $2;

-- name: audit_insert_checkpoint
INSERT INTO audit_checkpoint (tree_size, root_hash, issued_at, key_id, signature, origin)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: audit_cosignatures
SELECT tree_size, witness, public_key, cosigned_at, signature
FROM audit_cosignature WHERE tree_size = ANY($1::bigint[]) ORDER BY tree_size, witness;

-- name: audit_witness_key
SELECT public_key FROM audit_cosignature WHERE witness = $1 LIMIT 1;

-- name: audit_insert_cosignature
INSERT INTO audit_cosignature (tree_size, witness, public_key, cosigned_at, signature)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tree_size, witness) DO NOTHING;

-- name: audit_export_range
-- Positions [$1, $2) with their entry; rows whose entry is gone come back with a NULL id.
SELECT l.position, l.entry_id AS placed_id, n.hash AS leaf_hash,
       e.id AS entry_id, e.account_id, e.account_seq, e.kind, e.amount, e.balance_after,
       e.org_id, e.category, e.cause_event_id::text, e.cause_type, e.job_id::text,
       e.completion_id::text, e.redemption_id::text, e.occurred_at, e.recorded_at,
       e.prev_hash, e.entry_hash
FROM merkle_leaf l
JOIN merkle_node n ON n.level = 0 AND n.idx = l.position
LEFT JOIN ledger_entry e ON e.id = l.entry_id
WHERE l.position >= $1 AND l.position < $2
ORDER BY l.position;

-- name: audit_entry_position
SELECT l.position, e.org_id
FROM merkle_leaf l JOIN ledger_entry e ON e.id = l.entry_id
WHERE l.entry_id = $1;

-- name: audit_account_in_org
SELECT EXISTS (SELECT 1 FROM ledger_entry WHERE account_id = $1 AND org_id = $2);

-- name: audit_cutover
-- The last entry id written under the legacy chain rule (migration 0011); NULL before it.
SELECT last_legacy_entry_id FROM ledger_cutover WHERE id = 1;

-- name: audit_account_history
SELECT l.position, n.hash AS leaf_hash,
       e.id AS entry_id, e.account_id, e.account_seq, e.kind, e.amount, e.balance_after,
       e.org_id, e.category, e.cause_event_id::text, e.cause_type, e.job_id::text,
       e.completion_id::text, e.redemption_id::text, e.occurred_at, e.recorded_at,
       e.prev_hash, e.entry_hash
FROM ledger_entry e
LEFT JOIN merkle_leaf l ON l.entry_id = e.id
LEFT JOIN merkle_node n ON n.level = 0 AND n.idx = l.position
WHERE e.org_id = $4 AND e.account_id = $1 AND e.account_seq > $2
ORDER BY e.account_seq
LIMIT $3;
