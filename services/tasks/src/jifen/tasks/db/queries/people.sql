-- name: insert_person
INSERT INTO person (org_id, person_id, phone, role, display_name, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING org_id, person_id, phone, role, display_name, created_by, created_at;

-- name: list_people
SELECT org_id, person_id, phone, role, display_name, created_by, created_at
FROM person WHERE org_id = $1 AND ($2::text IS NULL OR role = $2)
  AND ($4::timestamptz IS NULL OR (created_at, person_id) > ($4, $5::text))
ORDER BY created_at, person_id LIMIT $3;

-- name: people_by_phone
SELECT person_id, role, display_name FROM person
WHERE org_id = $1 AND phone = $2 ORDER BY role;

-- name: signin_codes_since
SELECT count(*) FROM signin_code WHERE org_id = $1 AND phone = $2 AND created_at > $3;

-- name: last_signin_code_at
SELECT max(created_at) FROM signin_code WHERE org_id = $1 AND phone = $2;

-- name: insert_signin_code
INSERT INTO signin_code (id, org_id, phone, code_sha256, expires_at)
VALUES ($1, $2, $3, $4, $5);

-- name: live_signin_code
SELECT id, code_sha256, failures FROM signin_code
WHERE org_id = $1 AND phone = $2 AND used_at IS NULL AND expires_at > now()
ORDER BY created_at DESC LIMIT 1
FOR UPDATE;

-- name: fail_signin_code
UPDATE signin_code SET failures = failures + 1,
    used_at = CASE WHEN failures + 1 >= $2 THEN now() ELSE NULL END
WHERE id = $1 RETURNING failures, used_at IS NOT NULL AS void;

-- name: use_signin_code
UPDATE signin_code SET used_at = now() WHERE id = $1 AND used_at IS NULL RETURNING id;

-- name: insert_outbound_message
INSERT INTO outbound_message (org_id, channel, recipient, body) VALUES ($1, $2, $3, $4);

-- name: list_outbound_messages
SELECT id, org_id, channel, recipient, body, created_at FROM outbound_message
WHERE org_id = $1 AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $2;

-- name: people_by_person_id
-- a person named by id: every number and role the records give that id
SELECT person_id, phone, role, display_name FROM person
WHERE org_id = $1 AND person_id = $2 ORDER BY phone, role;

-- name: insert_invitation
INSERT INTO invitation (id, org_id, token_sha256, phone, person_id, created_by, issuer_role,
                        expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, org_id, phone, person_id, created_by, created_at, expires_at, used_at, revoked_at;

-- name: list_invitations
SELECT id, org_id, phone, person_id, created_by, created_at, expires_at, used_at, revoked_at
FROM invitation WHERE org_id = $1
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $2;

-- name: use_invitation
-- spends a live token of the caller's organisation at once (single use under concurrency:
-- the second exchange finds used_at set)
UPDATE invitation SET used_at = now(), used_by = $3
WHERE token_sha256 = $1 AND org_id = $2
  AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
RETURNING id, phone, issuer_role, created_by;

-- name: find_invitation
SELECT id, used_at, revoked_at, expires_at <= now() AS expired FROM invitation
WHERE token_sha256 = $1 AND org_id = $2;

-- name: revoke_invitation
UPDATE invitation SET revoked_at = coalesce(revoked_at, now()),
                      revoked_by = coalesce(revoked_by, $3)
WHERE id = $1 AND org_id = $2 AND used_at IS NULL
RETURNING id, org_id, phone, person_id, created_by, created_at, expires_at, used_at, revoked_at;

-- name: get_invitation
SELECT id, org_id, phone, person_id, created_by, created_at, expires_at, used_at, revoked_at
FROM invitation WHERE id = $1 AND org_id = $2;
