-- name: insert_reward
INSERT INTO reward (id, org_id, merchant_id, name_zh, name_en, points, stock)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: list_rewards
SELECT * FROM reward
WHERE org_id = $1 AND ($2::bool IS NULL OR active = $2) AND ($3::int IS NULL OR points <= $3)
ORDER BY points, id
LIMIT $4;

-- name: ensure_wallet
INSERT INTO wallet (account_id) VALUES ($1) ON CONFLICT DO NOTHING;

-- name: lock_wallet
SELECT account_id, ledger_balance, held FROM wallet WHERE account_id = $1 FOR UPDATE;

-- name: get_wallet
SELECT account_id, ledger_balance, held, ledger_seq, updated_at FROM wallet WHERE account_id = $1;

-- name: lock_reward
SELECT * FROM reward WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: redemption_by_key
SELECT * FROM redemption WHERE account_id = $1 AND idempotency_key = $2;

-- name: hold
UPDATE wallet SET held = held + $2, updated_at = now() WHERE account_id = $1;

-- name: take_stock
UPDATE reward SET stock = stock - 1 WHERE id = $1 AND stock IS NOT NULL;

-- name: insert_redemption
INSERT INTO redemption (id, account_id, org_id, reward_id, points, requested_by, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: get_redemption
SELECT * FROM redemption WHERE id = $1 AND org_id = $2;

-- name: apply_ledger_balance
UPDATE wallet SET ledger_balance = $2, ledger_seq = $3, updated_at = now()
WHERE account_id = $1 AND ledger_seq < $3;

-- name: confirm_redemption
UPDATE redemption SET status = 'confirmed', confirmed_at = now(), voucher_code = $2, debit_entry_id = $3
WHERE id = $1 AND status = 'pending'
RETURNING account_id, points;

-- name: release_hold
UPDATE wallet SET held = held - $2, updated_at = now() WHERE account_id = $1;
