-- Recurring jobs (e.g. a free repair day on the 15th of every month): each month's job is
-- its own row in a series; rolling a month forward twice adds nothing.
ALTER TABLE job
    ADD COLUMN recurrence   text CHECK (recurrence IN ('monthly')),
    ADD COLUMN series_id    uuid,
    ADD COLUMN series_month text CHECK (series_month ~ '^[0-9]{4}-[0-9]{2}$'),
    ADD CONSTRAINT job_series_once_a_month UNIQUE (series_id, series_month),
    ADD CONSTRAINT job_series_complete
        CHECK ((recurrence IS NULL) = (series_id IS NULL) AND (series_id IS NULL) = (series_month IS NULL));
CREATE INDEX job_series ON job (org_id, community_id, series_id, starts_at)
    WHERE recurrence IS NOT NULL;
