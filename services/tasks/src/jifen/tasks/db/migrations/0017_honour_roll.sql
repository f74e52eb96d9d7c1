-- The opt-in honour roll: a volunteer's own consent to be listed, by the display name on the
-- records, on the public roll of the communities they serve. No row, or listed = false: never
-- shown. Kept (not deleted) on opting out, so when it changed stays known.
CREATE TABLE honour_consent (
    org_id     text        NOT NULL,
    account_id text        NOT NULL,   -- the volunteer's account (their person_id)
    listed     boolean     NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, account_id)
);
-- the roll reads a community's verified completions of a month
CREATE INDEX completion_verified_job ON completion (org_id, verified_at, job_id)
    WHERE status = 'verified';
