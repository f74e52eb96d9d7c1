-- The organisation's records of people, which the portal's sign-in reads the role from (a
-- person never chooses it), one-time sign-in codes, and what the embedded SMS sender "sent".

-- one row per (phone, role): a volunteer who is also an officer has two rows and, signed in
-- once, may act in either role
CREATE TABLE person (
    org_id       text        NOT NULL,
    person_id    text        NOT NULL,   -- the token's subject (a volunteer's account id)
    phone        text        NOT NULL,   -- normalised: + and digits only
    role         text        NOT NULL CHECK (role IN ('volunteer', 'officer', 'merchant', 'admin', 'auditor')),
    display_name text        NOT NULL DEFAULT '',
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, phone, role),
    UNIQUE (org_id, person_id, role)
);

-- a code is kept only as a hash, lives a few minutes, is used once and allows a few wrong tries
CREATE TABLE signin_code (
    id          uuid        PRIMARY KEY,
    org_id      text        NOT NULL,
    phone       text        NOT NULL,
    code_sha256 bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    failures    integer     NOT NULL DEFAULT 0,
    used_at     timestamptz
);
CREATE INDEX signin_code_phone ON signin_code (org_id, phone, created_at DESC);

-- the embedded stack's sender (JIFEN_TASKS_SMS_SENDER=log) keeps here what a gateway would have
-- delivered, for the operator's page; with a gateway this table stays empty
CREATE TABLE outbound_message (
    id         bigserial   PRIMARY KEY,
    org_id     text        NOT NULL,
    channel    text        NOT NULL DEFAULT 'sms',
    recipient  text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
