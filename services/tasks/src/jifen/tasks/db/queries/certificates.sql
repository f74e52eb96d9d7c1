-- name: service_record
-- a volunteer's verified completions in [$3, $4), oldest first
SELECT c.verified_at, j.title, j.category, coalesce(j.service_minutes, 0) AS minutes, j.points
FROM completion c JOIN job j ON j.id = c.job_id
WHERE c.org_id = $1 AND c.account_id = $2 AND c.status = 'verified'
  AND c.verified_at >= $3 AND c.verified_at < $4
ORDER BY c.verified_at, c.id;

-- name: volunteer_name
SELECT display_name FROM person WHERE org_id = $1 AND person_id = $2 AND role = 'volunteer';

-- name: insert_certificate
INSERT INTO certificate (code, org_id, org_name, account_id, display_name, starts_on, ends_on,
                         jobs, service_minutes, points, lines, issued_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *;

-- name: get_certificate
SELECT * FROM certificate WHERE code = $1;
