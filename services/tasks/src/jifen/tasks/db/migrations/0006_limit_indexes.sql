-- The per-officer and per-automatic-job limits read, at every verification, what was verified
-- today in the organisation and what a job paid so far: indexes, so that is not a scan.
CREATE INDEX completion_org_verified_day ON completion (org_id, verified_at)
    WHERE status = 'verified';
CREATE INDEX completion_job ON completion (job_id);
