-- Recurring jobs roll on their own each month (issue 21, part 5: the tasks worker publishes
-- the coming months' occurrences of every series); an officer ends a series here, and no
-- month is rolled for it after that, by hand or by the worker. Nothing is deleted: the
-- months already published stay as they are.
CREATE TABLE series_end (
    series_id  uuid        PRIMARY KEY,
    org_id     text        NOT NULL,
    ended_by   text        NOT NULL,
    ended_at   timestamptz NOT NULL DEFAULT now(),
    reason     text        NOT NULL
);
