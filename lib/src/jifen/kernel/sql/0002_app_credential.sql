-- Community app credentials: issued per app by an organisation's admin, kept only as the
-- SHA-256 of a 256-bit random secret (a slow hash adds nothing at that entropy), revocable.
-- An app exchanges its credential for a short-lived bearer token (POST /v1/apps/token).
CREATE TABLE app_credential (
    id               uuid        PRIMARY KEY,
    org_id           text        NOT NULL,
    app_id           text        NOT NULL,
    secret_sha256    bytea       NOT NULL UNIQUE,
    writes_per_minute integer    NOT NULL CHECK (writes_per_minute > 0),
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    revoked_by       text
);
CREATE INDEX app_credential_org ON app_credential (org_id, created_at);
