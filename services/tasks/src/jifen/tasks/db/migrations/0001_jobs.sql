-- Jobs, claims and completions.

CREATE TABLE job (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    community_id  text        NOT NULL,
    title         text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    category      text        NOT NULL,
    points        integer     NOT NULL CHECK (points > 0),
    capacity      integer     NOT NULL CHECK (capacity > 0),
    -- claims held; the check makes oversubscription impossible whatever the code does
    claimed       integer     NOT NULL DEFAULT 0 CHECK (claimed >= 0 AND claimed <= capacity),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL CHECK (ends_at > starts_at),
    verification  text        NOT NULL DEFAULT 'officer',
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_menu ON job (org_id, community_id, starts_at);

CREATE TABLE claim (
    id          uuid        PRIMARY KEY,
    job_id      uuid        NOT NULL REFERENCES job (id),
    account_id  text        NOT NULL,
    claimed_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, account_id)
);

CREATE TABLE completion (
    id                uuid        PRIMARY KEY,
    job_id            uuid        NOT NULL REFERENCES job (id),
    -- one completion per claim
    claim_id          uuid        NOT NULL UNIQUE REFERENCES claim (id),
    account_id        text        NOT NULL,
    org_id            text        NOT NULL,
    submitted_by      text        NOT NULL,
    idempotency_key   text        NOT NULL,
    evidence          jsonb       NOT NULL DEFAULT '{}',
    status            text        NOT NULL DEFAULT 'submitted'
                      CHECK (status IN ('submitted', 'verified', 'rejected', 'revoked')),
    submitted_at      timestamptz NOT NULL DEFAULT now(),
    verified_by       text,
    verified_at       timestamptz,
    -- the verified event exactly as first published, republished as-is until credited
    verified_event    jsonb,
    last_published_at timestamptz,
    credited_at       timestamptz,
    credit_entry_id   bigint,
    UNIQUE (org_id, submitted_by, idempotency_key)
);
CREATE INDEX completion_uncredited ON completion (last_published_at)
    WHERE status = 'verified' AND credited_at IS NULL;
