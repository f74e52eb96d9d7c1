-- name: insert_job
INSERT INTO job (id, org_id, community_id, title, description, category, points, capacity,
                 starts_at, ends_at, verification, created_by, checkin_secret,
                 place_address, place_lat, place_lng, recurrence, series_id, series_month,
                 open_to_all, service_minutes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21)
ON CONFLICT (series_id, series_month) DO NOTHING
RETURNING *;

-- name: get_job
SELECT * FROM job WHERE id = $1 AND org_id = $2;

-- name: list_jobs
SELECT * FROM job
WHERE org_id = $1
  AND ($2::text IS NULL OR community_id = $2)
  AND ($3::text IS NULL OR category = $3)
  AND ($4::timestamptz IS NULL OR starts_at >= $4)
  AND ($5::timestamptz IS NULL OR starts_at < $5)
  AND (NOT $6::bool OR claimed < capacity)
  AND ($7::timestamptz IS NULL OR (starts_at, id) > ($7, $8::uuid))
ORDER BY starts_at, id
LIMIT $9;

-- name: take_place
UPDATE job SET claimed = claimed + 1 WHERE id = $1 AND claimed < capacity RETURNING claimed, capacity;

-- name: insert_claim
INSERT INTO claim (id, job_id, account_id, claimed_by) VALUES ($1, $2, $3, $4)
ON CONFLICT (job_id, account_id) WHERE withdrawn_at IS NULL DO NOTHING
RETURNING *;

-- name: get_claim
SELECT * FROM claim WHERE job_id = $1 AND account_id = $2 AND withdrawn_at IS NULL;

-- name: completion_by_key
SELECT * FROM completion WHERE org_id = $1 AND submitted_by = $2 AND idempotency_key = $3;

-- name: completion_by_claim
SELECT * FROM completion WHERE claim_id = $1;

-- name: insert_completion
INSERT INTO completion (id, job_id, claim_id, account_id, org_id, submitted_by, idempotency_key, evidence,
                        quantity, unit)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: completion_context
-- what a new completion is checked against, in one round trip: the job ($1, of organisation
-- $2), whether account $5 is registered with its community (with any of the organisation's,
-- for an open job), the account's live claim, the unit of the job's category if the
-- organisation added it, and whether submitter $3's key $4 or the claim already has a
-- completion (then the handler takes the long way, which answers with that completion), and
-- the organisation's timezone (a refusal states the job's window on its clock)
SELECT j.*,
       CASE WHEN j.open_to_all
            THEN EXISTS (SELECT 1 FROM community_member m
                         WHERE m.org_id = $2 AND m.account_id = $5)
            ELSE EXISTS (SELECT 1 FROM community_member m
                         WHERE m.org_id = $2 AND m.community_id = j.community_id
                           AND m.account_id = $5)
       END AS account_is_member,
       cl.id AS live_claim_id,
       (SELECT k.unit FROM job_category k WHERE k.org_id = $2 AND k.code = j.category)
           AS custom_unit,
       EXISTS (SELECT 1 FROM completion c
               WHERE c.org_id = $2 AND c.submitted_by = $3 AND c.idempotency_key = $4)
           AS key_used,
       EXISTS (SELECT 1 FROM completion c WHERE c.claim_id = cl.id) AS claim_done,
       (SELECT o.timezone FROM organisation o WHERE o.id = $2) AS org_timezone
FROM job j
LEFT JOIN claim cl ON cl.job_id = j.id AND cl.account_id = $5 AND cl.withdrawn_at IS NULL
WHERE j.id = $1 AND j.org_id = $2;

-- name: insert_submitted_completion
-- insert_completion, its 'submitted' status (actor: the submitter) and that status's event
-- in the outbox ($11..$15: topic, key, event id, type, payload) in one statement; no row
-- (and nothing written) when the key or the claim already has a completion
WITH c AS (
    INSERT INTO completion (id, job_id, claim_id, account_id, org_id, submitted_by,
                            idempotency_key, evidence, quantity, unit)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT DO NOTHING
    RETURNING *
), s AS (
    INSERT INTO status_change (org_id, subject, subject_id, status, actor, reason, job_id)
    SELECT org_id, 'completion', id, 'submitted', submitted_by, '', job_id FROM c
), o AS (
    INSERT INTO outbox (topic, key, event_id, event_type, payload)
    SELECT $11, $12, $13, $14, $15 FROM c
)
SELECT * FROM c;

-- name: get_completion
SELECT c.*, j.points, j.category, j.community_id, j.created_by AS job_created_by, j.verification
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.id = $1 AND c.org_id = $2;

-- name: lock_completion
SELECT c.*, j.points, j.category, j.community_id, j.created_by AS job_created_by, j.verification
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.id = $1 AND c.org_id = $2
FOR UPDATE OF c;

-- name: mark_verified
UPDATE completion
SET status = 'verified', verified_by = $2, verified_at = $3, verified_event = $4, last_published_at = $3,
    verified_seq = nextval('completion_verified_seq'), hold_level = NULL
WHERE id = $1
RETURNING *;

-- name: mark_credited
UPDATE completion SET credited_at = now(), credit_entry_id = $2
WHERE id = $1 AND credited_at IS NULL;

-- name: uncredited_due
SELECT id, account_id, verified_event FROM completion
WHERE status = 'verified' AND credited_at IS NULL AND last_published_at < now() - $1::interval
ORDER BY last_published_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: mark_republished
UPDATE completion SET last_published_at = now() WHERE id = ANY($1::uuid[]);
