-- Points belong to one organisation (issue #15): a ledger account is (org_id, account_id).
--
-- Entries already written keep what they are (append-only; their hashes are in the Merkle
-- tree): each carries the org that wrote it, but was chained per bare account_id with one
-- running balance across organisations. This migration records where that rule ends (the
-- cutover) and makes every later entry chain per (org_id, account_id):
--
--   entry id <= cutover (legacy): chain and running balance per account_id, as before;
--   entry id >  cutover:          chain and balance per (org_id, account_id). The first new
--     entry of (org, account) continues from that org's own last legacy entry of the account
--     (prev_hash = its entry_hash, account_seq = its seq + 1) with balance_after = the org's
--     legacy sum for the account + amount; with no legacy entry of that org it starts at the
--     genesis (seq 1, zeros, 0). Where all of an account's legacy entries are of one org (the
--     normal case) this is exactly the account's old chain continuing.
--
-- The write path needs no cutover logic: the `account` projection below is rebuilt per
-- (org, account) from the legacy entries, so its head is the continuation point above.
-- Deploy with the points workers stopped; the lock keeps out any writer that is not.

LOCK TABLE ledger_entry IN SHARE ROW EXCLUSIVE MODE;

-- The cutover: the highest id ever taken from the entry sequence before this migration, so
-- an old-version transaction still in flight commits a legacy entry (id <= cutover) and
-- every entry the new version writes has a higher id. One row, append-only.
CREATE TABLE ledger_cutover (
    id                    smallint    PRIMARY KEY CHECK (id = 1),
    last_legacy_entry_id  bigint      NOT NULL CHECK (last_legacy_entry_id >= 0),
    rule                  text        NOT NULL,
    recorded_at           timestamptz NOT NULL DEFAULT now()
);

INSERT INTO ledger_cutover (id, last_legacy_entry_id, rule)
SELECT 1,
       greatest(
           (SELECT coalesce(max(id), 0) FROM ledger_entry),
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ledger_entry_id_seq)
       ),
       'entries with id <= last_legacy_entry_id chain per account_id; later entries per '
       '(org_id, account_id), continuing from that org''s last legacy entry of the account';

CREATE TRIGGER ledger_cutover_no_update BEFORE UPDATE OR DELETE ON ledger_cutover
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER ledger_cutover_no_truncate BEFORE TRUNCATE ON ledger_cutover
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
REVOKE UPDATE, DELETE ON ledger_cutover FROM jifen_points_app;

-- A chain position is unique per (org, account). Legacy (account_id, account_seq) pairs were
-- unique, so they stay unique with org_id added. The new index also serves the per-org reads
-- that ledger_entry_org served.
ALTER TABLE ledger_entry DROP CONSTRAINT ledger_entry_account_id_account_seq_key;
ALTER TABLE ledger_entry
    ADD CONSTRAINT ledger_entry_org_account_seq UNIQUE (org_id, account_id, account_seq);
DROP INDEX ledger_entry_org;

-- The projection of chain heads, per (org, account), rebuilt from the ledger. head_hash and
-- seq are those of the org's last entry of the account (by account_seq), balance, earned and
-- spent that org's sums: the continuation point of the rule above.
DROP TABLE account;
CREATE TABLE account (
    org_id      text        NOT NULL,
    account_id  text        NOT NULL,
    seq         integer     NOT NULL DEFAULT 0,
    balance     bigint      NOT NULL DEFAULT 0,
    earned      bigint      NOT NULL DEFAULT 0,
    spent       bigint      NOT NULL DEFAULT 0,
    head_hash   text        NOT NULL DEFAULT repeat('0', 64),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, account_id)
);
REVOKE ALL ON account FROM jifen_points_app;
GRANT SELECT, INSERT, UPDATE ON account TO jifen_points_app;

INSERT INTO account (org_id, account_id, seq, balance, earned, spent, head_hash)
SELECT DISTINCT ON (org_id, account_id)
       org_id,
       account_id,
       account_seq,
       sum(amount) OVER w,
       sum(CASE WHEN kind IN ('credit', 'reversal') THEN amount ELSE 0 END) OVER w,
       -sum(CASE WHEN kind IN ('debit', 'refund') THEN amount ELSE 0 END) OVER w,
       entry_hash
FROM ledger_entry
WINDOW w AS (PARTITION BY org_id, account_id)
ORDER BY org_id, account_id, account_seq DESC;

-- Two-person adjustments compare normalised identities (case and surrounding spaces do not
-- make another person). NOT VALID: decisions recorded before stay as they were; every new
-- decision is checked. The service compares Unicode case folding; this is its ASCII floor.
ALTER TABLE adjustment ADD CONSTRAINT adjustment_two_people CHECK (
    decided_by IS NULL OR (
        lower(btrim(decided_by)) <> lower(btrim(requested_by))
        AND lower(btrim(decided_by)) <> lower(btrim(account_id))
    )
) NOT VALID;
