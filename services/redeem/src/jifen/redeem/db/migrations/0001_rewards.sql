-- Rewards with stock, wallets kept from the ledger's events, and redemptions.

CREATE TABLE reward (
    id          uuid        PRIMARY KEY,
    org_id      text        NOT NULL,
    merchant_id text        NOT NULL,
    name_zh     text        NOT NULL,
    name_en     text        NOT NULL,
    points      integer     NOT NULL CHECK (points > 0),
    -- NULL: unlimited (a service); never below zero whatever the concurrency
    stock       integer     CHECK (stock >= 0),
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reward_org ON reward (org_id, active);

CREATE TABLE wallet (
    account_id      text        PRIMARY KEY,
    -- the balance the ledger last announced for this account (its entry.appended events)
    ledger_balance  bigint      NOT NULL DEFAULT 0,
    ledger_seq      integer     NOT NULL DEFAULT 0,
    -- points of placed redemptions the ledger has not debited yet
    held            bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE redemption (
    id               uuid        PRIMARY KEY,
    account_id       text        NOT NULL,
    org_id           text        NOT NULL,
    reward_id        uuid        NOT NULL REFERENCES reward (id),
    points           integer     NOT NULL CHECK (points > 0),
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'fulfilled', 'cancelled')),
    requested_by     text        NOT NULL,
    idempotency_key  text        NOT NULL,
    voucher_code     text        UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz,
    debit_entry_id   bigint,
    UNIQUE (account_id, idempotency_key)
);
