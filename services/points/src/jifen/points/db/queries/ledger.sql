-- name: ensure_accounts
-- a ledger account is (org_id, account_id): $1 orgs, $2 account ids, pairwise
INSERT INTO account (org_id, account_id)
SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: lock_accounts
-- own_tx: this transaction's id (assigned by the row locks if not before)
SELECT a.org_id, a.account_id, a.seq, a.balance, a.earned, a.spent, a.head_hash, a.head_tx,
       pg_current_xact_id() AS own_tx
FROM account a
JOIN unnest($1::text[], $2::text[]) AS k(org_id, account_id)
    ON a.org_id = k.org_id AND a.account_id = k.account_id
ORDER BY a.org_id, a.account_id
FOR UPDATE OF a;

-- name: applied_event_ids
SELECT cause_event_id::text AS event_id FROM ledger_entry WHERE cause_event_id = ANY($1::uuid[]);

-- name: existing_refs
SELECT 'completion' AS ref_kind, completion_id::text AS ref_id, kind
FROM ledger_entry WHERE completion_id = ANY($1::uuid[])
UNION ALL
SELECT 'redemption', redemption_id::text, kind
FROM ledger_entry WHERE redemption_id = ANY($2::uuid[]);

-- name: next_entry_ids
SELECT nextval('ledger_entry_id_seq') AS id FROM generate_series(1, $1::int);

-- name: update_heads
-- $1: the tx the batch's entries carry (see repo.lock_heads); then the heads, pairwise
UPDATE account AS a
SET seq = h.seq, balance = h.balance, earned = h.earned, spent = h.spent,
    head_hash = h.head_hash, head_tx = $1::xid8, updated_at = now()
FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::text[])
    AS h(org_id, account_id, seq, balance, earned, spent, head_hash)
WHERE a.org_id = h.org_id AND a.account_id = h.account_id;

-- name: balance
-- $1 org, $2 account: the (organisation, account) pair, nothing of other organisations
SELECT account_id, balance, earned, spent, seq AS entries
FROM account WHERE org_id = $1 AND account_id = $2;

-- name: account_in_org
SELECT EXISTS (SELECT 1 FROM account WHERE account_id = $1 AND org_id = $2 AND seq > 0);

-- name: entries_page
SELECT id, account_seq, kind, amount, balance_after, org_id, category, cause_event_id::text,
       cause_type, job_id::text, completion_id::text, redemption_id::text, occurred_at,
       recorded_at, entry_hash
FROM ledger_entry
WHERE org_id = $4 AND account_id = $1 AND account_seq < $2
ORDER BY account_seq DESC
LIMIT $3;

-- name: insert_adjustment
INSERT INTO adjustment (id, org_id, account_id, amount, reason, requested_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: lock_adjustment
SELECT * FROM adjustment WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: decide_adjustment
UPDATE adjustment SET status = $2, decided_by = $3, decided_at = now(), decision_note = $4,
    event_id = $5
WHERE id = $1
RETURNING *;

-- name: list_adjustments
SELECT * FROM adjustment
WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
  AND ($4::timestamptz IS NULL OR (requested_at, id) < ($4, $5::uuid))
ORDER BY requested_at DESC, id DESC
LIMIT $3;

-- name: statement_totals
SELECT kind, coalesce(category, '') AS category, coalesce(reward_id::text, '') AS reward_id,
       sum(amount)::bigint AS points, count(*)::int AS entries
FROM ledger_entry
WHERE org_id = $4 AND account_id = $1 AND recorded_at >= $2 AND recorded_at < $3
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: balance_before
SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entry
WHERE org_id = $3 AND account_id = $1 AND recorded_at < $2;

-- name: liability_by_org
SELECT org_id, sum(amount)::bigint AS points FROM ledger_entry GROUP BY org_id;

-- name: entries_by_cause
SELECT id, account_id, account_seq, kind, amount, balance_after, org_id, category,
       cause_event_id::text, cause_type, job_id::text, completion_id::text, redemption_id::text,
       occurred_at, recorded_at, entry_hash
FROM ledger_entry WHERE cause_event_id = ANY($1::uuid[])
ORDER BY id;

-- name: relay_cursor
-- the ledger relay's progress (migration 0012): the last (tx, id) the broker acknowledged
SELECT tx, entry_id, legacy_outbox_id FROM ledger_relay_cursor WHERE id = 1;

-- name: relay_legacy_pending
-- entries' events written to the outbox before 0012 ($1 topic, up to outbox id $2) not yet out
SELECT EXISTS (SELECT 1 FROM outbox WHERE topic = $1 AND id <= $2);

-- name: relay_entries
-- the next $3 entries past the cursor ($1 tx, $2 id) of transactions that have all ended: below
-- this statement's snapshot's xmin no transaction is in flight, so none of these rows can
-- still appear or vanish; in (tx, id) order, which is every chain's order
SELECT tx, id, account_id, account_seq, kind, amount, balance_after, org_id, category,
       cause_event_id::text, cause_type, job_id::text, completion_id::text, redemption_id::text,
       occurred_at, recorded_at, entry_hash
FROM ledger_entry
WHERE tx >= $1::xid8 AND (tx, id) > ($1::xid8, $2::bigint)
  AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx, id
LIMIT $3;

-- name: relay_advance
-- compare-and-set: from ($1, $2) to ($3, $4); false if another relay moved it meanwhile
WITH moved AS (
    UPDATE ledger_relay_cursor SET tx = $3::xid8, entry_id = $4, updated_at = now()
    WHERE id = 1 AND tx = $1::xid8 AND entry_id = $2
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM moved);

-- name: relay_backlog
-- committed entries past the cursor ($1 tx, $2 id), counted up to 1,000,000 (read every second:
-- bounded even when the relay has been down long), and the age of the next one to go out
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM ledger_entry
            WHERE tx >= $1::xid8 AND (tx, id) > ($1::xid8, $2::bigint) LIMIT 1000000) AS p
       ) AS n,
       coalesce((SELECT extract(epoch FROM now() - recorded_at) FROM ledger_entry
                 WHERE tx >= $1::xid8 AND (tx, id) > ($1::xid8, $2::bigint)
                 ORDER BY tx, id LIMIT 1), 0)::float8 AS age;

-- name: points_report
-- an organisation's entries recorded in [$2, $3), per category and kind (the ledger's own
-- time: an account's entries are recorded in its order, so the sums and the balances agree)
SELECT category, kind, count(*)::int AS entries, sum(amount)::bigint AS amount
FROM ledger_entry
WHERE org_id = $1 AND recorded_at >= $2 AND recorded_at < $3
GROUP BY category, kind
ORDER BY category NULLS LAST, kind;

-- name: points_outstanding
-- what the organisation's accounts held at $2: each account's balance after its last entry
-- recorded before it
SELECT coalesce(sum(balance_after), 0)::bigint AS outstanding
FROM (SELECT DISTINCT ON (account_id) balance_after
      FROM ledger_entry
      WHERE org_id = $1 AND recorded_at < $2
      ORDER BY account_id, account_seq DESC) last_entry;
