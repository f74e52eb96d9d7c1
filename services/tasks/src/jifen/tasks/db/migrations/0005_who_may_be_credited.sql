-- Who may be credited (issue 15): jobs open to their community's members unless said open,
-- communities that exist, rotating check-in codes with an attempt limit, and organisation
-- limits that are never unset.

-- Communities named by jobs, hazard reports and needs written before communities had to
-- exist become real communities, so old data stays valid. Nobody is registered with them by
-- this migration: membership is a report-in by the volunteer or their app, never implied.
INSERT INTO community (org_id, id, name, created_by)
SELECT DISTINCT org_id, community_id, community_id, 'migration:0005' FROM job
UNION SELECT DISTINCT org_id, community_id, community_id, 'migration:0005' FROM hazard_report
UNION SELECT DISTINCT org_id, community_id, community_id, 'migration:0005' FROM need
ON CONFLICT DO NOTHING;

ALTER TABLE job
    -- false: only accounts registered with the job's community may claim and complete it;
    -- true: any account registered with a community of the organisation
    ADD COLUMN open_to_all    boolean NOT NULL DEFAULT false,
    -- the job's own secret for rotating check-in codes; never leaves the service
    ADD COLUMN checkin_secret bytea;

-- gen_random_uuid() draws from the strong random source: two of them make a 32-byte secret
-- with 244 random bits. The static codes are void from now on (a photo of one still works).
UPDATE job
SET checkin_secret = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')
WHERE verification = 'checkin';
ALTER TABLE job DROP CONSTRAINT job_checkin_has_code;
UPDATE job SET checkin_code = NULL WHERE checkin_code IS NOT NULL;
ALTER TABLE job
    ADD CONSTRAINT job_checkin_has_secret CHECK (verification <> 'checkin' OR checkin_secret IS NOT NULL),
    ADD CONSTRAINT job_no_static_code CHECK (checkin_code IS NULL);

-- wrong check-in codes, per (job, account): beyond the limit the account waits
CREATE TABLE checkin_failure (
    id          bigserial   PRIMARY KEY,
    job_id      uuid        NOT NULL REFERENCES job (id),
    account_id  text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkin_failure_recent ON checkin_failure (job_id, account_id, failed_at);

-- Limits are never unset. An organisation without settings gets the defaults in code
-- (jifen.tasks.domain.limits.DEFAULT_LIMITS); one with unset daily limits gets them now.
ALTER TABLE organisation
    ADD COLUMN daily_points_per_officer integer CHECK (daily_points_per_officer > 0),
    ADD COLUMN automatic_job_points     integer CHECK (automatic_job_points > 0);
UPDATE organisation SET
    daily_points_officer     = coalesce(daily_points_officer, least(200, coalesce(daily_points_admin, 200))),
    daily_points_admin       = coalesce(daily_points_admin, greatest(500, coalesce(daily_points_officer, 0))),
    daily_points_per_officer = 3000,
    automatic_job_points     = 300;
ALTER TABLE organisation
    ALTER COLUMN daily_points_officer SET NOT NULL,
    ALTER COLUMN daily_points_admin SET NOT NULL,
    ALTER COLUMN daily_points_per_officer SET NOT NULL,
    ALTER COLUMN automatic_job_points SET NOT NULL;
