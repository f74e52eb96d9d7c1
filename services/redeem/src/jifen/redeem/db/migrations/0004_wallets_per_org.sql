-- Points belong to one scheme (issue 15): a wallet is (organisation, account), kept from the
-- ledger's entry.appended events by their org_id; a redemption spends only the wallet of the
-- reward's organisation. Redemption idempotency is scoped to (organisation, caller, key).
-- Wrong voucher codes are counted so fulfilment can be refused for a while (429).

-- 1. Wallets per (org_id, account_id), rebuilt from what this service stored.
--
-- The old wallet held one balance per bare account id: the ledger's balance_after of the
-- account's global chain. Per organisation we know exactly what this service stored with
-- its org_id: credits (and whether reversed), and redemptions (debited? refunded? still
-- held?). Not stored: adjustments, and reversals of credits announced before wallet_credit
-- existed. So:
--   rebuilt(org)  = unreversed credits - debited redemptions + refunded redemptions
--   residual      = old global balance - sum of rebuilt(org) over the account's orgs
--   one org only  : balance = the old balance (everything belonged to it: exact)
--   several orgs  : balance = rebuilt(org) + least(residual, 0)
--                   an unexplained deduction is charged to every organisation (never
--                   overstating what may be spent anywhere); an unexplained addition is
--                   credited to none
--   held(org)     = points of the org's redemptions still pending or cancelling (exact)
--   ledger_seq    = 0: the next entry of that (org, account) chain is taken whatever its
--                   sequence, and its balance_after (the ledger's own, per organisation)
--                   replaces the rebuilt figure
-- wallet_migration keeps each old row and what became of it, for the auditors.

CREATE TABLE wallet_migration (
    account_id      text        PRIMARY KEY,
    old_balance     bigint      NOT NULL,
    old_seq         integer     NOT NULL,
    old_held        bigint      NOT NULL,
    orgs            text[]      NOT NULL,
    -- old balance minus what the stored facts explain; 0 when they explain it all
    residual        bigint      NOT NULL,
    migrated_at     timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE wallet RENAME TO wallet_unscoped;

CREATE TABLE wallet (
    org_id          text        NOT NULL,
    account_id      text        NOT NULL,
    -- the balance the ledger last announced for this (organisation, account)
    ledger_balance  bigint      NOT NULL DEFAULT 0,
    ledger_seq      integer     NOT NULL DEFAULT 0,
    -- points of placed redemptions the ledger has not debited yet
    held            bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, account_id)
);
CREATE INDEX wallet_account ON wallet (account_id);

CREATE TEMP TABLE wallet_rebuilt ON COMMIT DROP AS
WITH orgs AS (
    SELECT account_id, org_id FROM wallet_credit
    UNION
    SELECT account_id, org_id FROM redemption
)
SELECT o.account_id,
       o.org_id,
       COALESCE((SELECT sum(c.amount) FROM wallet_credit c
                 WHERE c.account_id = o.account_id AND c.org_id = o.org_id
                   AND NOT c.reversed), 0)
     - COALESCE((SELECT sum(r.points) FROM redemption r
                 WHERE r.account_id = o.account_id AND r.org_id = o.org_id
                   AND r.debit_entry_id IS NOT NULL), 0)
     + COALESCE((SELECT sum(r.points) FROM redemption r
                 WHERE r.account_id = o.account_id AND r.org_id = o.org_id
                   AND r.refund_entry_id IS NOT NULL), 0) AS balance,
       COALESCE((SELECT sum(r.points) FROM redemption r
                 WHERE r.account_id = o.account_id AND r.org_id = o.org_id
                   AND r.status IN ('pending', 'cancelling')), 0) AS held
FROM orgs o;

INSERT INTO wallet_migration (account_id, old_balance, old_seq, old_held, orgs, residual)
SELECT w.account_id, w.ledger_balance, w.ledger_seq, w.held,
       COALESCE((SELECT array_agg(b.org_id ORDER BY b.org_id) FROM wallet_rebuilt b
                 WHERE b.account_id = w.account_id), '{}'),
       w.ledger_balance - COALESCE((SELECT sum(b.balance) FROM wallet_rebuilt b
                                    WHERE b.account_id = w.account_id), 0)
FROM wallet_unscoped w;

INSERT INTO wallet (org_id, account_id, ledger_balance, ledger_seq, held, updated_at)
SELECT b.org_id,
       b.account_id,
       CASE WHEN cardinality(m.orgs) = 1 THEN m.old_balance
            ELSE b.balance + LEAST(m.residual, 0) END,
       0,
       b.held,
       now()
FROM wallet_rebuilt b
JOIN wallet_migration m ON m.account_id = b.account_id;

DROP TABLE wallet_unscoped;

DROP INDEX wallet_credit_account;
CREATE INDEX wallet_credit_account ON wallet_credit (org_id, account_id, recorded_at);

-- 2. Idempotency per (organisation, caller, key); it was (account, key) across organisations.
-- Old rows keep their key in the new scope, unless two of them would collide there (an app
-- that used one key for two accounts): those keep it unscoped, never replayed again.
ALTER TABLE redemption DROP CONSTRAINT redemption_account_id_idempotency_key_key;
ALTER TABLE redemption ADD COLUMN key_scoped boolean NOT NULL DEFAULT true;
UPDATE redemption r SET key_scoped = false
WHERE EXISTS (SELECT 1 FROM redemption o
              WHERE o.org_id = r.org_id AND o.requested_by = r.requested_by
                AND o.idempotency_key = r.idempotency_key AND o.id <> r.id);
CREATE UNIQUE INDEX redemption_idempotency ON redemption (org_id, requested_by, idempotency_key)
    WHERE key_scoped;

-- 3. Wrong voucher codes presented at fulfilment, counted per redemption and per merchant
-- within a sliding window.
CREATE TABLE voucher_attempt (
    id             bigserial   PRIMARY KEY,
    org_id         text        NOT NULL,
    merchant_id    text        NOT NULL,
    redemption_id  uuid        NOT NULL REFERENCES redemption (id),
    at             timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX voucher_attempt_redemption ON voucher_attempt (redemption_id, at);
CREATE INDEX voucher_attempt_merchant ON voucher_attempt (org_id, merchant_id, at);
