-- Invitation links: an officer or admin invites a person already on the records; the link's
-- token is kept only as its SHA-256, lives a week, is used once and can be revoked. The
-- sessions it gives come from the person's records at the exchange (by phone, as a code's do).
CREATE TABLE invitation (
    id           uuid        PRIMARY KEY,
    org_id       text        NOT NULL,
    token_sha256 bytea       NOT NULL UNIQUE,
    phone        text        NOT NULL,   -- the invited person's number on the records
    person_id    text        NOT NULL,   -- as the issuer named them (shown on the list)
    created_by   text        NOT NULL,
    issuer_role  text        NOT NULL CHECK (issuer_role IN ('officer', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    used_by      text,                   -- the app credential's subject that exchanged it
    revoked_at   timestamptz,
    revoked_by   text,
    CHECK (used_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitation_org ON invitation (org_id, created_at DESC, id);
