-- Needs × resources and community partners (issue 21, part 4)

-- name: link_need_job
INSERT INTO need_job (org_id, need_id, job_id, resource_id, linked_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING;

-- name: jobs_of_needs
-- the jobs each of these needs or resources became (or serves), oldest first
SELECT n.id AS item_id, nj.job_id
FROM unnest($1::uuid[]) AS n(id)
JOIN need_job nj ON nj.need_id = n.id OR nj.resource_id = n.id
ORDER BY nj.linked_at, nj.job_id;

-- name: open_items
-- open wishes or offers of an organisation to match ($2: in this community, or all; $3: the
-- kind; $4/$5: a window they must not be wholly outside of)
SELECT * FROM need
WHERE org_id = $1 AND status = 'open' AND kind = $3 AND category IS NOT NULL
  AND ($2::text IS NULL OR community_id = $2)
  AND ($4::timestamptz IS NULL OR wanted_until IS NULL OR wanted_until > $4)
  AND ($5::timestamptz IS NULL OR wanted_from IS NULL OR wanted_from < $5)
ORDER BY created_at, id
LIMIT 2000;

-- name: set_job_partner
UPDATE job SET partner_id = $3 WHERE id = $1 AND org_id = $2 AND partner_id IS NULL
RETURNING *;

-- name: claims_by_outsiders
-- active claims on a job by accounts that are not members of the partner
SELECT count(*) FROM claim c
WHERE c.job_id = $1 AND c.withdrawn_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM partner_member m
                  WHERE m.org_id = $2 AND m.partner_id = $3 AND m.account_id = c.account_id);

-- name: insert_partner
INSERT INTO partner (org_id, id, kind, name, contact, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING *, 0::bigint AS members;

-- name: get_partner
SELECT p.*, (SELECT count(*) FROM partner_member m
             WHERE m.org_id = p.org_id AND m.partner_id = p.id) AS members
FROM partner p WHERE p.org_id = $1 AND p.id = $2;

-- name: list_partners
SELECT p.*, (SELECT count(*) FROM partner_member m
             WHERE m.org_id = p.org_id AND m.partner_id = p.id) AS members
FROM partner p
WHERE p.org_id = $1 AND ($2::text IS NULL OR p.kind = $2) AND ($3::text IS NULL OR p.id > $3)
ORDER BY p.id LIMIT $4;

-- name: insert_partner_member
INSERT INTO partner_member (org_id, partner_id, account_id, added_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: get_partner_member
SELECT * FROM partner_member WHERE org_id = $1 AND partner_id = $2 AND account_id = $3;

-- name: list_partner_members
SELECT * FROM partner_member
WHERE org_id = $1 AND partner_id = $2
  AND ($4::timestamptz IS NULL OR (added_at, account_id) > ($4, $5::text))
ORDER BY added_at, account_id LIMIT $3;

-- name: lock_job
SELECT * FROM job WHERE id = $1 AND org_id = $2 FOR UPDATE;
