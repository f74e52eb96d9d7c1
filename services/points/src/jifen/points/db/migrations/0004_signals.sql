-- Integrity signals: windowed tallies kept in PostgreSQL (not in faust tables, whose changelog
-- recovery is wrong on the embedded broker), and the ids of the events already tallied.

CREATE TABLE signal_tally (
    signal          text        NOT NULL,
    org_id          text        NOT NULL,
    community_id    text        NOT NULL,
    subject         text        NOT NULL,
    window_start    timestamptz NOT NULL,
    window_seconds  integer     NOT NULL,
    count           integer     NOT NULL,
    points          bigint      NOT NULL,
    PRIMARY KEY (signal, org_id, subject, window_start)
);
CREATE INDEX signal_tally_recent ON signal_tally (org_id, window_start);

CREATE TABLE signal_event (
    event_id    uuid        PRIMARY KEY,
    tallied_at  timestamptz NOT NULL DEFAULT now()
);
