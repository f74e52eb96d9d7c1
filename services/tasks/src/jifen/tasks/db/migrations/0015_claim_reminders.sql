-- A volunteer holding a place in a job is reminded through the sender before it starts
-- (issue 21: "no one can be told anything … a claim reminder"). One row per claim reminded,
-- so a reminder goes once, whichever worker sends it.
CREATE TABLE claim_reminder (
    claim_id    uuid        PRIMARY KEY REFERENCES claim (id),
    org_id      text        NOT NULL,
    account_id  text        NOT NULL,
    -- NULL: no number on record, so no message was sent
    phone       text,
    sent_at     timestamptz NOT NULL DEFAULT now()
);
