-- name: insert_call
INSERT INTO call (id, org_id, kind, community_id, job_id, message, created_by, closes_at,
                  idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: call_by_key
SELECT * FROM call WHERE org_id = $1 AND created_by = $2 AND idempotency_key = $3;

-- name: community_recipients
-- the volunteers registered with a community, with their phone where one is on record
SELECT m.account_id, p.phone
FROM community_member m
LEFT JOIN person p ON p.org_id = m.org_id AND p.person_id = m.account_id AND p.role = 'volunteer'
WHERE m.org_id = $1 AND m.community_id = $2
ORDER BY m.account_id;

-- name: help_recipients
-- the others registered with any community the requester is registered with
SELECT DISTINCT m.account_id, p.phone
FROM community_member mine
JOIN community_member m ON m.org_id = mine.org_id AND m.community_id = mine.community_id
LEFT JOIN person p ON p.org_id = m.org_id AND p.person_id = m.account_id AND p.role = 'volunteer'
WHERE mine.org_id = $1 AND mine.account_id = $2 AND m.account_id <> $2
ORDER BY m.account_id;

-- name: insert_recipient
INSERT INTO call_recipient (call_id, account_id, phone, notified_at) VALUES ($1, $2, $3, $4);

-- name: get_call
SELECT * FROM call WHERE id = $1 AND org_id = $2;

-- name: call_roll
SELECT account_id, phone IS NOT NULL AS notified, answer, answered_at, note
FROM call_recipient WHERE call_id = $1
ORDER BY answered_at NULLS LAST, account_id;

-- name: answer_call
UPDATE call_recipient SET answer = $3, answered_at = now(), note = $4
WHERE call_id = $1 AND account_id = $2
RETURNING *;

-- name: last_help_by
SELECT max(created_at) FROM call WHERE org_id = $1 AND created_by = $2 AND kind = 'help';

-- name: open_calls_for
-- the calls addressed to an account that are still open, newest first
SELECT c.*, r.answer
FROM call_recipient r JOIN call c ON c.id = r.call_id
WHERE c.org_id = $1 AND r.account_id = $2 AND c.closes_at > now()
  AND ($3::timestamptz IS NULL OR (c.created_at, c.id) < ($3, $4::uuid))
ORDER BY c.created_at DESC, c.id DESC
LIMIT $5;

-- name: org_name
SELECT coalesce(nullif((SELECT name FROM organisation WHERE id = $1), ''), $1);

-- name: org_clock
-- the organisation's name (its id until it is named) and timezone (NULL until its admin sets
-- one: the default clock then)
SELECT coalesce(nullif(o.name, ''), x.id) AS name, o.timezone
FROM (SELECT $1::text AS id) x LEFT JOIN organisation o ON o.id = x.id;

-- name: claims_to_remind
-- active claims of jobs starting within $1 seconds, not reminded, not yet completed; locked
-- so that two workers never remind the same claim twice
SELECT c.id AS claim_id, j.org_id, c.account_id, j.title, j.starts_at, j.place_address,
       p.phone
FROM claim c
JOIN job j ON j.id = c.job_id
LEFT JOIN person p ON p.org_id = j.org_id AND p.person_id = c.account_id AND p.role = 'volunteer'
WHERE c.withdrawn_at IS NULL
  AND j.starts_at > now() AND j.starts_at <= now() + make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM claim_reminder r WHERE r.claim_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM completion x WHERE x.job_id = j.id AND x.account_id = c.account_id)
ORDER BY j.starts_at, c.id
LIMIT $2
FOR UPDATE OF c SKIP LOCKED;

-- name: insert_claim_reminder
INSERT INTO claim_reminder (claim_id, org_id, account_id, phone) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING;
