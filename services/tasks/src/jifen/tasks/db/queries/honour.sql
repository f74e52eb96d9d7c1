-- name: volunteer_on_record
-- the name the roll would show for a volunteer's account
SELECT display_name FROM person WHERE org_id = $1 AND person_id = $2 AND role = 'volunteer';

-- name: set_honour_consent
INSERT INTO honour_consent (org_id, account_id, listed) VALUES ($1, $2, $3)
ON CONFLICT (org_id, account_id) DO UPDATE SET listed = EXCLUDED.listed, changed_at = now()
RETURNING listed, changed_at;

-- name: get_honour_consent
SELECT listed, changed_at FROM honour_consent WHERE org_id = $1 AND account_id = $2;

-- name: honour_roll
-- a community's opted-in volunteers with completions verified in [$3, $4): how many and the
-- jobs' whole points, highest first; only a volunteer whose consent says listed, by the
-- display name on the records (never the account id or the phone)
SELECT p.display_name, count(*)::int AS services, sum(j.points)::bigint AS points
FROM completion c
JOIN job j ON j.id = c.job_id
JOIN honour_consent h ON h.org_id = c.org_id AND h.account_id = c.account_id AND h.listed
JOIN person p ON p.org_id = c.org_id AND p.person_id = c.account_id AND p.role = 'volunteer'
WHERE c.org_id = $1 AND j.community_id = $2 AND c.status = 'verified'
  AND c.verified_at >= $3 AND c.verified_at < $4 AND p.display_name <> ''
GROUP BY c.account_id, p.display_name
ORDER BY points DESC, services DESC, p.display_name, c.account_id
LIMIT $5;
