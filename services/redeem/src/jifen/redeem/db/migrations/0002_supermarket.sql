-- The points supermarket: merchants, reward rules, the redemption lifecycle (fulfil, cancel,
-- expire) with the event ids auditors reconcile against, and wallets' maturing credits.

CREATE TABLE merchant (
    org_id      text        NOT NULL,
    id          text        NOT NULL,
    name_zh     text        NOT NULL,
    name_en     text        NOT NULL,
    kind        text        NOT NULL DEFAULT 'shop'
                CHECK (kind IN ('shop', 'station', 'clinic', 'union', 'other')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
-- rewards listed before merchants existed become merchants named by their id
INSERT INTO merchant (org_id, id, name_zh, name_en)
SELECT DISTINCT org_id, merchant_id, merchant_id, merchant_id FROM reward
ON CONFLICT DO NOTHING;

ALTER TABLE reward
    ADD COLUMN kind                 text    NOT NULL DEFAULT 'goods'
                                    CHECK (kind IN ('goods', 'service', 'voucher')),
    -- for unlimited rewards (stock NULL): at most this many redemptions per UTC day
    ADD COLUMN daily_quota          integer CHECK (daily_quota > 0),
    -- per member and calendar month (UTC)
    ADD COLUMN monthly_limit        integer CHECK (monthly_limit > 0),
    ADD COLUMN valid_from           timestamptz,
    ADD COLUMN valid_until          timestamptz,
    ADD COLUMN community_id         text,
    -- NULL: the service's default voucher lifetime
    ADD COLUMN voucher_ttl_seconds  integer CHECK (voucher_ttl_seconds > 0),
    ADD CONSTRAINT reward_window CHECK (valid_until IS NULL OR valid_from IS NULL
                                        OR valid_until > valid_from);
CREATE INDEX reward_merchant ON reward (org_id, merchant_id);

-- 'cancelling': cancelled before the ledger debited it; the refund is asked for once the
-- debit is seen (the ledger refuses a refund without a debit). 'expired': an unfulfilled
-- voucher past its time; refunded like a cancellation.
ALTER TABLE redemption DROP CONSTRAINT redemption_status_check;
ALTER TABLE redemption
    ADD CONSTRAINT redemption_status_check CHECK (status IN (
        'pending', 'confirmed', 'fulfilled', 'cancelling', 'cancelled', 'expired')),
    ADD COLUMN placed_event_id     uuid UNIQUE,
    ADD COLUMN cancelled_event_id  uuid UNIQUE,
    ADD COLUMN cancelled_at        timestamptz,
    ADD COLUMN cancelled_by        text,
    ADD COLUMN cancel_reason       text,
    ADD COLUMN expires_at          timestamptz,
    ADD COLUMN fulfilled_at        timestamptz,
    ADD COLUMN fulfilled_by        text,
    ADD COLUMN community_id        text;
-- the auditors' feed pages by (created_at, id) within an organisation
CREATE INDEX redemption_org_created ON redemption (org_id, created_at, id);
-- quotas and member limits count live redemptions of a reward
CREATE INDEX redemption_reward_created ON redemption (reward_id, created_at);
CREATE INDEX redemption_account_reward ON redemption (account_id, reward_id, created_at);
CREATE INDEX redemption_expiring ON redemption (expires_at) WHERE status = 'confirmed';

-- an organisation's knobs; fraud_window_seconds: credits younger than this are not spendable
CREATE TABLE org_setting (
    org_id                text        PRIMARY KEY,
    fraud_window_seconds  integer     NOT NULL DEFAULT 0 CHECK (fraud_window_seconds >= 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- credits the ledger announced, kept to tell maturing points from spendable ones; a reversal
-- of the same completion marks its credit reversed so it is not counted twice
CREATE TABLE wallet_credit (
    entry_id       bigint      PRIMARY KEY,
    account_id     text        NOT NULL,
    org_id         text        NOT NULL,
    completion_id  uuid,
    amount         bigint      NOT NULL CHECK (amount > 0),
    recorded_at    timestamptz NOT NULL,
    reversed       boolean     NOT NULL DEFAULT false
);
CREATE INDEX wallet_credit_account ON wallet_credit (account_id, recorded_at);
CREATE INDEX wallet_credit_completion ON wallet_credit (completion_id);
