-- name: insert_app_credential
INSERT INTO app_credential (id, org_id, app_id, secret_sha256, writes_per_minute, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, org_id, app_id, writes_per_minute, created_by, created_at, revoked_at;

-- name: list_app_credentials
SELECT id, org_id, app_id, writes_per_minute, created_by, created_at, revoked_at
FROM app_credential WHERE org_id = $1
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $2;

-- name: revoke_app_credential
UPDATE app_credential SET revoked_at = now(), revoked_by = $3
WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL
RETURNING id, org_id, app_id, writes_per_minute, created_by, created_at, revoked_at;

-- name: app_credential_revoked_at
SELECT revoked_at FROM app_credential WHERE id = $1 AND org_id = $2;

-- name: app_credential_by_secret
SELECT id, org_id, app_id, writes_per_minute, revoked_at
FROM app_credential WHERE secret_sha256 = $1;
