-- The append-only ledger, the per-account chain heads, and append-only enforcement.

CREATE TABLE ledger_entry (
    -- global sequence: the order auditors' Merkle tree will follow
    id              bigint      PRIMARY KEY,
    account_id      text        NOT NULL,
    account_seq     integer     NOT NULL CHECK (account_seq >= 1),
    kind            text        NOT NULL CHECK (kind IN ('credit', 'reversal', 'debit', 'refund', 'adjustment')),
    amount          bigint      NOT NULL CHECK (amount <> 0),
    balance_after   bigint      NOT NULL,
    org_id          text        NOT NULL,
    category        text,
    -- the event that caused this entry: applying the same event twice adds nothing
    cause_event_id  uuid        NOT NULL UNIQUE,
    cause_type      text        NOT NULL,
    job_id          uuid,
    completion_id   uuid,
    redemption_id   uuid,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    prev_hash       text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    entry_hash      text        NOT NULL CHECK (entry_hash ~ '^[0-9a-f]{64}$'),
    UNIQUE (account_id, account_seq),
    CHECK ((kind IN ('credit', 'reversal') AND completion_id IS NOT NULL)
        OR (kind IN ('debit', 'refund') AND redemption_id IS NOT NULL)
        OR kind = 'adjustment')
);

CREATE SEQUENCE ledger_entry_id_seq OWNED BY ledger_entry.id;

-- one credit and at most one reversal per completion; one debit, one refund per redemption
CREATE UNIQUE INDEX ledger_entry_completion_kind ON ledger_entry (completion_id, kind)
    WHERE completion_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_entry_redemption_kind ON ledger_entry (redemption_id, kind)
    WHERE redemption_id IS NOT NULL;
CREATE INDEX ledger_entry_org ON ledger_entry (org_id, account_id);

-- Append-only, enforced by the database for every role including the owner: corrections
-- are new, compensating entries.
CREATE FUNCTION ledger_entry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_refuse_change();
CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_refuse_change();

-- The tip of each account's chain: a projection rewritten with each batch (not the ledger;
-- it can be rebuilt from ledger_entry at any time).
CREATE TABLE account (
    account_id  text        PRIMARY KEY,
    seq         integer     NOT NULL DEFAULT 0,
    balance     bigint      NOT NULL DEFAULT 0,
    earned      bigint      NOT NULL DEFAULT 0,
    spent       bigint      NOT NULL DEFAULT 0,
    head_hash   text        NOT NULL DEFAULT repeat('0', 64),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
