-- name: insert_webhook
INSERT INTO webhook (id, org_id, url, event_types, secret, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: list_webhooks
-- $2: only those this caller made (an app); NULL: all of the organisation (its admin)
SELECT * FROM webhook
WHERE org_id = $1 AND disabled_at IS NULL AND ($2::text IS NULL OR created_by = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
ORDER BY created_at, id LIMIT $5;

-- name: get_webhook
SELECT * FROM webhook
WHERE id = $1 AND org_id = $2 AND ($3::text IS NULL OR created_by = $3);

-- name: disable_webhook
UPDATE webhook SET disabled_at = now(), disabled_by = $4
WHERE id = $1 AND org_id = $2 AND ($3::text IS NULL OR created_by = $3) AND disabled_at IS NULL
RETURNING *;

-- name: list_deliveries
SELECT d.id, d.event_id, d.event_type, d.status, d.attempts, d.next_attempt_at, d.created_at,
       d.delivered_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt, 'at', a.at, 'http_status', a.http_status,
                    'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.attempt)
                 FROM webhook_attempt a WHERE a.delivery_id = d.id), '[]'::jsonb) AS log
FROM webhook_delivery d
WHERE d.webhook_id = $1 AND ($3::bigint IS NULL OR d.id < $3)
ORDER BY d.id DESC
LIMIT $2;

-- name: due_deliveries
-- the worker's batch: due, pending, of live subscriptions; locked so two workers share them
SELECT d.id, d.event_id, d.event_type, d.payload, d.attempts, w.url, w.secret
FROM webhook_delivery d JOIN webhook w ON w.id = d.webhook_id
WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.disabled_at IS NULL
ORDER BY d.next_attempt_at
LIMIT $1
FOR UPDATE OF d SKIP LOCKED;

-- name: record_attempt
INSERT INTO webhook_attempt (delivery_id, attempt, http_status, error, duration_ms)
VALUES ($1, $2, $3, $4, $5);

-- name: delivery_done
UPDATE webhook_delivery SET status = 'delivered', attempts = $2, delivered_at = now()
WHERE id = $1;

-- name: delivery_retry
-- $3: seconds until the next attempt; NULL: no more (failed)
UPDATE webhook_delivery
SET attempts = $2,
    status = CASE WHEN $3::float8 IS NULL THEN 'failed' ELSE 'pending' END,
    next_attempt_at = CASE WHEN $3::float8 IS NULL THEN next_attempt_at
                           ELSE now() + make_interval(secs => $3::float8) END
WHERE id = $1;
