-- name: get_organisation
SELECT * FROM organisation WHERE id = $1;

-- name: upsert_organisation
INSERT INTO organisation (id, name, timezone, daily_points_officer, hourly_completions_officer,
                          daily_points_admin, hourly_completions_admin, updated_by,
                          daily_points_per_officer, automatic_job_points, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, timezone = EXCLUDED.timezone,
    daily_points_officer = EXCLUDED.daily_points_officer,
    hourly_completions_officer = EXCLUDED.hourly_completions_officer,
    daily_points_admin = EXCLUDED.daily_points_admin,
    hourly_completions_admin = EXCLUDED.hourly_completions_admin,
    daily_points_per_officer = EXCLUDED.daily_points_per_officer,
    automatic_job_points = EXCLUDED.automatic_job_points,
    updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING *;

-- name: insert_community
INSERT INTO community (org_id, id, name, created_by) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: get_community
SELECT * FROM community WHERE org_id = $1 AND id = $2;

-- name: list_communities
SELECT c.*, (SELECT count(*) FROM community_member m
             WHERE m.org_id = c.org_id AND m.community_id = c.id) AS members
FROM community c WHERE c.org_id = $1 AND ($2::text IS NULL OR c.id > $2)
ORDER BY c.id LIMIT $3;

-- name: register_member
INSERT INTO community_member (org_id, community_id, account_id, registered_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: get_member
SELECT * FROM community_member WHERE org_id = $1 AND community_id = $2 AND account_id = $3;

-- name: list_members
SELECT * FROM community_member WHERE org_id = $1 AND community_id = $2
  AND ($4::timestamptz IS NULL OR (registered_at, account_id) > ($4, $5::text))
ORDER BY registered_at, account_id LIMIT $3;

-- name: communities_of
SELECT c.id, c.name, m.registered_at
FROM community_member m JOIN community c ON c.org_id = m.org_id AND c.id = m.community_id
WHERE m.org_id = $1 AND m.account_id = $2 AND ($3::text IS NULL OR c.id > $3)
ORDER BY c.id LIMIT $4;

-- name: insert_category
INSERT INTO job_category (org_id, code, label, created_by, unit) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: list_categories
SELECT code, label, unit FROM job_category WHERE org_id = $1 ORDER BY code;

-- name: lock_claim
SELECT * FROM claim WHERE id = $1 AND job_id = $2 FOR UPDATE;

-- name: withdraw_claim
UPDATE claim SET withdrawn_at = $2, withdrawn_by = $3 WHERE id = $1 AND withdrawn_at IS NULL
RETURNING *;

-- name: release_place
UPDATE job SET claimed = claimed - 1 WHERE id = $1 AND claimed > 0 RETURNING claimed;

-- name: lock_account_limits
SELECT pg_advisory_xact_lock(hashtextextended('limits:' || $1::text || ':' || $2::text, 0));

-- name: usage_of
SELECT coalesce(sum(j.points) FILTER (WHERE c.verified_at >= $3), 0)::int AS points_today,
       count(*) FILTER (WHERE c.verified_at >= $4)::int AS completions_last_hour
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.account_id = $2 AND c.verified_at >= least($3, $4)
  AND c.status = 'verified';

-- name: lock_verified_seq
SELECT pg_advisory_xact_lock(hashtextextended('verified-seq:' || $1::text, 0));

-- name: mark_held
UPDATE completion SET status = 'held', hold_level = $2, hold_reason = $3 WHERE id = $1
RETURNING *;

-- name: mark_rejected
UPDATE completion SET status = 'rejected', rejected_by = $2, rejected_at = $3, rejection_reason = $4
WHERE id = $1
RETURNING *;

-- name: reopen_completion
UPDATE completion SET status = 'submitted', hold_level = NULL WHERE id = $1 RETURNING *;

-- name: mark_revoked
UPDATE completion
SET status = 'revoked', revoked_by = $2, revoked_at = $3, revocation_reason = $4,
    revoked_event = $5, revoke_published_at = $3
WHERE id = $1
RETURNING *;

-- name: mark_reversed
UPDATE completion SET reversed_at = now(), reversal_entry_id = $2
WHERE id = $1 AND reversed_at IS NULL;

-- name: unreversed_due
SELECT id, account_id, revoked_event FROM completion
WHERE status = 'revoked' AND reversed_at IS NULL AND revoke_published_at < now() - $1::interval
  -- a reversal needs the credit first: republish it only once the credit is acknowledged
  AND credited_at IS NOT NULL
ORDER BY revoke_published_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: mark_revoke_republished
UPDATE completion SET revoke_published_at = now() WHERE id = ANY($1::uuid[]);

-- name: uncredited_due_any
SELECT id, account_id, verified_event FROM completion
WHERE status IN ('verified', 'revoked') AND verified_event IS NOT NULL AND credited_at IS NULL
  AND last_published_at < now() - $1::interval
ORDER BY verified_seq
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: republish_now
UPDATE completion SET last_published_at = now() - interval '1 day' WHERE id = $1;

-- name: list_completions
SELECT c.*, j.points, j.category, j.community_id
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1
  AND ($2::text IS NULL OR c.status = $2)
  AND ($3::text IS NULL OR c.account_id = $3)
  AND ($4::text IS NULL OR c.hold_level = $4)
  AND ($6::text IS NULL OR j.community_id = $6)
  AND ($9::uuid IS NULL OR c.job_id = $9)
  AND ($7::timestamptz IS NULL OR (c.submitted_at, c.id) > ($7, $8::uuid))
ORDER BY c.submitted_at, c.id
LIMIT $5;

-- name: list_completions_newest
-- as list_completions, newest first (a volunteer's own record)
SELECT c.*, j.points, j.category, j.community_id
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1
  AND ($2::text IS NULL OR c.status = $2)
  AND ($3::text IS NULL OR c.account_id = $3)
  AND ($4::text IS NULL OR c.hold_level = $4)
  AND ($6::text IS NULL OR j.community_id = $6)
  AND ($9::uuid IS NULL OR c.job_id = $9)
  AND ($7::timestamptz IS NULL OR (c.submitted_at, c.id) < ($7, $8::uuid))
ORDER BY c.submitted_at DESC, c.id DESC
LIMIT $5;

-- name: audit_completions
SELECT c.id, c.account_id, c.job_id, j.points, c.status, c.verified_seq,
       c.verified_event ->> 'id' AS verified_event_id,
       c.revoked_event ->> 'id' AS revoked_event_id,
       c.verified_at, c.revoked_at
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.verified_seq IS NOT NULL AND c.verified_seq > $2
ORDER BY c.verified_seq
LIMIT $3;

-- name: record_status
INSERT INTO status_change (org_id, subject, subject_id, status, actor, reason, job_id)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: history_page
-- a page of the statuses of one subject, oldest first (after the status change $4)
SELECT id, status, actor, reason, job_id, at FROM status_change
WHERE org_id = $1 AND subject = $2 AND subject_id = $3 AND ($4::bigint IS NULL OR id > $4)
ORDER BY id LIMIT $5;

-- name: history_of
SELECT status, actor, reason, job_id, at FROM status_change
WHERE org_id = $1 AND subject = $2 AND subject_id = $3
ORDER BY id;

-- name: histories_of
-- the histories of a page of items in one round trip (a list's items, not one query each)
SELECT subject_id, status, actor, reason, job_id, at FROM status_change
WHERE org_id = $1 AND subject = $2 AND subject_id = ANY($3::uuid[])
ORDER BY subject_id, id;

-- name: insert_appeal
INSERT INTO appeal (id, org_id, completion_id, account_id, kind, reason, filed_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: lock_appeal
SELECT * FROM appeal WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: get_appeal
SELECT * FROM appeal WHERE id = $1 AND org_id = $2;

-- name: list_appeals
SELECT * FROM appeal
WHERE org_id = $1 AND ($2::text IS NULL OR account_id = $2) AND ($3::text IS NULL OR status = $3)
  AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6::uuid))
ORDER BY created_at, id LIMIT $4;

-- name: insert_decision
INSERT INTO appeal_decision (appeal_id, outcome, decided_by, decided_role, reason)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: set_appeal_status
UPDATE appeal SET status = $2 WHERE id = $1 RETURNING *;

-- name: decisions_of
SELECT outcome, decided_by, decided_role, reason, decided_at FROM appeal_decision
WHERE appeal_id = $1 ORDER BY id;

-- name: insert_hazard
INSERT INTO hazard_report (id, org_id, community_id, kind, text, place_address, place_lat,
                           place_lng, evidence_ref, reported_by, account_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: get_hazard
SELECT * FROM hazard_report WHERE id = $1 AND org_id = $2;

-- name: lock_hazard
SELECT * FROM hazard_report WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: list_hazards
SELECT * FROM hazard_report
WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR community_id = $3)
  AND ($4::text IS NULL OR account_id = $4) AND ($6::text IS NULL OR kind = $6)
  AND ($7::timestamptz IS NULL OR (created_at, id) > ($7, $8::uuid))
ORDER BY created_at, id LIMIT $5;

-- name: set_hazard
UPDATE hazard_report SET status = $2, job_id = coalesce($3, job_id), duplicate_of = $4
WHERE id = $1
RETURNING *;

-- name: hazards_done_by_job
UPDATE hazard_report SET status = 'done' WHERE job_id = $1 AND status = 'in_progress'
RETURNING id, org_id;

-- name: insert_need
INSERT INTO need (id, org_id, community_id, kind, title, description, posted_by, category, place,
                  wanted_from, wanted_until, quantity, source, partner_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING *;

-- name: get_need
SELECT * FROM need WHERE id = $1 AND org_id = $2;

-- name: lock_need
SELECT * FROM need WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: list_needs
SELECT * FROM need
WHERE org_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3)
  AND ($4::text IS NULL OR community_id = $4)
  AND ($6::timestamptz IS NULL OR (created_at, id) > ($6, $7::uuid))
ORDER BY created_at, id LIMIT $5;

-- name: set_need
UPDATE need SET status = $2, claimed_by = coalesce($3, claimed_by), job_id = coalesce($4, job_id)
WHERE id = $1
RETURNING *;

-- name: needs_done_by_job
-- the needs and resources behind this job that are now done: every job each became has a
-- verified completion (one need can yield several jobs)
UPDATE need n SET status = 'done'
WHERE n.id IN (SELECT need_id FROM need_job WHERE job_id = $1
               UNION SELECT resource_id FROM need_job WHERE job_id = $1)
  AND n.status IN ('claimed', 'in_progress')
  AND NOT EXISTS (SELECT 1 FROM need_job nj
                  WHERE (nj.need_id = n.id OR nj.resource_id = n.id)
                    AND NOT EXISTS (SELECT 1 FROM completion c
                                    WHERE c.job_id = nj.job_id AND c.status = 'verified'))
RETURNING id, org_id;

-- name: series_templates
-- the latest job of each recurring series of a community before the given month
SELECT DISTINCT ON (series_id) *
FROM job
WHERE org_id = $1 AND community_id = $2 AND recurrence IS NOT NULL AND series_month < $3
  AND NOT EXISTS (SELECT 1 FROM series_end e WHERE e.series_id = job.series_id)
ORDER BY series_id, starts_at DESC;

-- name: series_communities
-- every (organisation, community) with a recurring series still running: what the worker rolls
SELECT DISTINCT j.org_id, j.community_id
FROM job j
WHERE j.recurrence IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM series_end e WHERE e.series_id = j.series_id)
ORDER BY j.org_id, j.community_id;

-- name: end_series
-- only a series of the caller's organisation; NULL when it has none of that id or it ended
INSERT INTO series_end (series_id, org_id, ended_by, reason)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM job WHERE series_id = $1 AND org_id = $2)
ON CONFLICT (series_id) DO NOTHING
RETURNING *;

-- name: get_series_end
SELECT e.* FROM series_end e WHERE e.series_id = $1 AND e.org_id = $2;

-- name: is_member
SELECT EXISTS (SELECT 1 FROM community_member
               WHERE org_id = $1 AND community_id = $2 AND account_id = $3) AS member;

-- name: is_member_anywhere
SELECT EXISTS (SELECT 1 FROM community_member WHERE org_id = $1 AND account_id = $2) AS member;

-- name: lock_limit_key
SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0));

-- name: officer_points_today
-- points verified since $3 on the authority of officer $2 (normalised): their own
-- verifications and approvals, and what check-in and automatic jobs they published paid out
SELECT coalesce(sum(j.points), 0)::int AS points
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.status = 'verified' AND c.verified_at >= $3
  AND (lower(btrim(c.verified_by)) = $2
       OR (c.verified_by LIKE 'system:%' AND lower(btrim(j.created_by)) = $2));

-- name: job_automatic_points
SELECT coalesce(sum(j.points), 0)::int AS points
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.job_id = $1 AND c.status = 'verified' AND c.verified_by LIKE 'system:%';

-- name: checkin_failures
SELECT failed_at FROM checkin_failure
WHERE job_id = $1 AND account_id = $2 AND failed_at > now() - $3::interval
ORDER BY failed_at;

-- name: record_checkin_failure
INSERT INTO checkin_failure (job_id, account_id) VALUES ($1, $2);

-- name: held_by
-- who verified a completion into its current hold
SELECT actor FROM status_change
WHERE subject = 'completion' AND subject_id = $1 AND status LIKE 'held:%'
ORDER BY id DESC LIMIT 1;

-- name: get_job_secret
SELECT id, verification, checkin_secret FROM job WHERE id = $1 AND org_id = $2;

-- name: activity_report
-- verified completions in [$2, $3), per (community, category), per community, and in all
-- (grouping sets: distinct volunteers and activities are counted in each, not summed);
-- $4: one community only. level: 0 a category of a community, 1 a community, 3 the total
SELECT GROUPING(j.community_id, j.category) AS level,
       j.community_id, j.category,
       count(DISTINCT j.id)::int AS activities,
       count(*)::int AS attendances,
       count(DISTINCT c.account_id)::int AS volunteers,
       coalesce(sum(j.service_minutes), 0)::bigint AS service_minutes,
       sum(j.points)::bigint AS points,
       sum(c.quantity)::bigint AS quantity,
       max(c.unit) AS unit
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.status = 'verified'
  AND c.verified_at >= $2 AND c.verified_at < $3
  AND ($4::text IS NULL OR j.community_id = $4)
GROUP BY GROUPING SETS ((j.community_id, j.category), (j.community_id), ())
ORDER BY level, j.community_id, j.category;

-- name: activity_quantities
-- the quantities of the same completions per unit, per community and in all
SELECT GROUPING(j.community_id) AS level, j.community_id, c.unit,
       sum(c.quantity)::bigint AS quantity
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.status = 'verified' AND c.unit IS NOT NULL
  AND c.verified_at >= $2 AND c.verified_at < $3
  AND ($4::text IS NULL OR j.community_id = $4)
GROUP BY GROUPING SETS ((j.community_id, c.unit), (c.unit))
ORDER BY level, j.community_id, c.unit;
