-- Organisations and communities, check-in codes, claim withdrawal, review of completions
-- (holds, rejections, revocations), appeals, hazard reports, micro-wishes and partner offers,
-- and one status history for all of them ("request -> task -> done" can be followed).

-- An organisation is named by the tokens it issues (the `org` claim); this row holds its
-- settings. No row means no limits.
CREATE TABLE organisation (
    id                      text        PRIMARY KEY,
    name                    text        NOT NULL DEFAULT '',
    timezone                text        NOT NULL DEFAULT 'Asia/Shanghai',
    -- first thresholds: beyond them a completion waits for an officer
    daily_points_officer    integer     CHECK (daily_points_officer > 0),
    hourly_completions_officer integer  CHECK (hourly_completions_officer > 0),
    -- second thresholds: beyond them it waits for the organisation's admin
    daily_points_admin      integer     CHECK (daily_points_admin > 0),
    hourly_completions_admin integer    CHECK (hourly_completions_admin > 0),
    updated_by              text        NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE community (
    org_id      text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

-- a volunteer "reports to the community"; one volunteer may be active in several
CREATE TABLE community_member (
    org_id        text        NOT NULL,
    community_id  text        NOT NULL,
    account_id    text        NOT NULL,
    registered_by text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, community_id, account_id),
    FOREIGN KEY (org_id, community_id) REFERENCES community (org_id, id)
);
CREATE INDEX community_member_account ON community_member (org_id, account_id);

-- categories an organisation adds to the built-in ones
CREATE TABLE job_category (
    org_id      text        NOT NULL,
    code        text        NOT NULL,
    label       text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, code)
);

ALTER TABLE job
    ADD COLUMN checkin_code  text,
    ADD COLUMN place_address text,
    ADD COLUMN place_lat     double precision CHECK (place_lat BETWEEN -90 AND 90),
    ADD COLUMN place_lng     double precision CHECK (place_lng BETWEEN -180 AND 180),
    ADD CONSTRAINT job_verification_mode CHECK (verification IN ('officer', 'checkin', 'automatic')),
    ADD CONSTRAINT job_checkin_has_code CHECK (verification <> 'checkin' OR checkin_code IS NOT NULL);

-- A withdrawn claim is kept (nothing is deleted); only an active claim is unique per volunteer.
ALTER TABLE claim
    ADD COLUMN withdrawn_at timestamptz,
    ADD COLUMN withdrawn_by text,
    DROP CONSTRAINT claim_job_id_account_id_key;
CREATE UNIQUE INDEX claim_active ON claim (job_id, account_id) WHERE withdrawn_at IS NULL;

ALTER TABLE completion
    DROP CONSTRAINT completion_status_check,
    ADD CONSTRAINT completion_status_check
        CHECK (status IN ('submitted', 'held', 'verified', 'rejected', 'revoked')),
    -- who must decide a held completion: 'officer' or 'admin'
    ADD COLUMN hold_level        text CHECK (hold_level IN ('officer', 'admin')),
    ADD COLUMN hold_reason       text,
    ADD COLUMN rejected_by       text,
    ADD COLUMN rejected_at       timestamptz,
    ADD COLUMN rejection_reason  text,
    ADD COLUMN revoked_by        text,
    ADD COLUMN revoked_at        timestamptz,
    ADD COLUMN revocation_reason text,
    -- the revoked event as first published, republished as-is until the ledger reverses it
    ADD COLUMN revoked_event     jsonb,
    ADD COLUMN revoke_published_at timestamptz,
    ADD COLUMN reversed_at       timestamptz,
    ADD COLUMN reversal_entry_id bigint,
    -- order of verification within an organisation, assigned under a per-organisation lock
    -- held to commit, so a reader paging by it never skips a row committed later
    ADD COLUMN verified_seq      bigint UNIQUE;
CREATE SEQUENCE completion_verified_seq;
CREATE INDEX completion_audit ON completion (org_id, verified_seq) WHERE verified_seq IS NOT NULL;
CREATE INDEX completion_account_day ON completion (org_id, account_id, verified_at);
CREATE INDEX completion_review ON completion (org_id, status, submitted_at)
    WHERE status IN ('submitted', 'held');
CREATE INDEX completion_unreversed ON completion (revoke_published_at)
    WHERE status = 'revoked' AND reversed_at IS NULL;

CREATE TABLE appeal (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    completion_id uuid        NOT NULL REFERENCES completion (id),
    account_id    text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('rejection', 'hold', 'missing_credit')),
    reason        text        NOT NULL,
    filed_by      text        NOT NULL,
    status        text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'upheld', 'dismissed')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appeal_account ON appeal (org_id, account_id, created_at);

-- every decision on an appeal, never updated: a wrong decision is corrected by a new one
CREATE TABLE appeal_decision (
    id          bigserial   PRIMARY KEY,
    appeal_id   uuid        NOT NULL REFERENCES appeal (id),
    outcome     text        NOT NULL CHECK (outcome IN ('upheld', 'dismissed')),
    decided_by  text        NOT NULL,
    decided_role text       NOT NULL,
    reason      text        NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hazard_report (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    community_id  text        NOT NULL,
    kind          text        NOT NULL,
    text          text        NOT NULL,
    place_address text        NOT NULL DEFAULT '',
    place_lat     double precision,
    place_lng     double precision,
    evidence_ref  text        NOT NULL DEFAULT '',
    reported_by   text        NOT NULL,
    account_id    text        NOT NULL,
    status        text        NOT NULL DEFAULT 'reported'
                  CHECK (status IN ('reported', 'in_progress', 'duplicate', 'closed', 'done')),
    job_id        uuid        REFERENCES job (id),
    duplicate_of  uuid        REFERENCES hazard_report (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hazard_report_list ON hazard_report (org_id, status, created_at);
CREATE INDEX hazard_report_job ON hazard_report (job_id) WHERE job_id IS NOT NULL;

-- residents' micro-wishes and partners' offers
CREATE TABLE need (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    community_id  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('wish', 'offer')),
    title         text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    posted_by     text        NOT NULL,
    status        text        NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'claimed', 'in_progress', 'done', 'closed')),
    claimed_by    text,
    job_id        uuid        REFERENCES job (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX need_list ON need (org_id, status, created_at);
CREATE INDEX need_job ON need (job_id) WHERE job_id IS NOT NULL;

-- one history for completions, hazard reports, needs and appeals: append-only
CREATE TABLE status_change (
    id          bigserial   PRIMARY KEY,
    org_id      text        NOT NULL,
    subject     text        NOT NULL CHECK (subject IN ('completion', 'hazard', 'need', 'appeal')),
    subject_id  uuid        NOT NULL,
    status      text        NOT NULL,
    actor       text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    job_id      uuid,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_change_subject ON status_change (subject, subject_id, id);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER status_change_append_only BEFORE UPDATE OR DELETE ON status_change
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER appeal_decision_append_only BEFORE UPDATE OR DELETE ON appeal_decision
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
