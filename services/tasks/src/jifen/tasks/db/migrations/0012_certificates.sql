-- A volunteer's service record as a certificate (issue 21, part 2: what the national
-- volunteer-service record counts). When one is issued its figures and its list of service
-- are kept under an unguessable code, and anyone can check a printed certificate against the
-- API (GET /v1/certificates/{code}): one altered on paper no longer matches, and one revoked
-- later still says what was true when it was issued.
CREATE TABLE certificate (
    code             text        PRIMARY KEY,
    org_id           text        NOT NULL,
    org_name         text        NOT NULL,
    account_id       text        NOT NULL,
    display_name     text        NOT NULL DEFAULT '',
    starts_on        date        NOT NULL,
    ends_on          date        NOT NULL CHECK (ends_on > starts_on),  -- exclusive
    jobs             integer     NOT NULL,
    service_minutes  bigint      NOT NULL,
    points           bigint      NOT NULL,
    lines            jsonb       NOT NULL,   -- each completion: date, title, category, minutes, points
    issued_by        text        NOT NULL,
    issued_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificate_account ON certificate (org_id, account_id, issued_at DESC);
