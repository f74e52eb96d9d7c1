-- Calls to volunteers (issue 21, part 5): an officer's mobilisation of a community (the
-- typhoon call-up: "迅速把新就业群体集结起来"), and a volunteer's request for help to the
-- others of their communities ("请求支援，电池没电了"). Each recipient is told through the
-- sender (the embedded stack's log sender; an SMS gateway) where a phone is on record, and
-- answers available or not; the caller reads the roll-call as it fills.
CREATE TABLE call (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('mobilisation', 'help')),
    -- a mobilisation's community; NULL for a help request (the requester's communities)
    community_id  text,
    job_id        uuid        REFERENCES job (id),
    message       text        NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    closes_at     timestamptz NOT NULL CHECK (closes_at > created_at)
);
CREATE INDEX call_org ON call (org_id, created_at DESC);
CREATE INDEX call_help_by ON call (org_id, created_by, created_at) WHERE kind = 'help';

CREATE TABLE call_recipient (
    call_id      uuid        NOT NULL REFERENCES call (id),
    account_id   text        NOT NULL,
    -- NULL: no number on record, so no message was sent (the app still lists the call)
    phone        text,
    notified_at  timestamptz,
    answer       text        CHECK (answer IN ('available', 'unavailable')),
    answered_at  timestamptz,
    note         text        NOT NULL DEFAULT '',
    PRIMARY KEY (call_id, account_id)
);
CREATE INDEX call_recipient_account ON call_recipient (account_id, call_id);
