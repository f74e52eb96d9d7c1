-- name: insert_merchant
INSERT INTO merchant (org_id, id, name_zh, name_en, kind)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: ensure_merchant
INSERT INTO merchant (org_id, id, name_zh, name_en) VALUES ($1, $2, $2, $2)
ON CONFLICT DO NOTHING;

-- name: get_merchant
SELECT * FROM merchant WHERE org_id = $1 AND id = $2;

-- name: merchant_settlement
-- a merchant's fulfilled redemptions handed over in [$3, $4), per reward
SELECT w.id AS reward_id, w.name_zh, w.name_en, w.value_fen,
       count(*)::int AS fulfilled,
       sum(r.points)::bigint AS points,
       (w.value_fen::bigint * count(*))::bigint AS value_fen_total
FROM redemption r JOIN reward w ON w.id = r.reward_id
WHERE r.org_id = $1 AND w.merchant_id = $2 AND r.status = 'fulfilled'
  AND r.fulfilled_at >= $3 AND r.fulfilled_at < $4
GROUP BY w.id
ORDER BY w.name_zh, w.id;

-- name: list_merchants
SELECT * FROM merchant WHERE org_id = $1 AND ($3::text IS NULL OR id > $3) ORDER BY id LIMIT $2;

-- name: insert_reward
INSERT INTO reward (id, org_id, merchant_id, name_zh, name_en, points, stock, kind, daily_quota,
                    monthly_limit, valid_from, valid_until, community_id, voucher_ttl_seconds,
                    value_fen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING *;

-- name: list_rewards
-- community: rewards open to everyone and those restricted to that community;
-- available: on offer now, inside its validity window and with stock left
SELECT * FROM reward
WHERE org_id = $1
  AND ($2::bool IS NULL OR active = $2)
  AND ($3::int IS NULL OR points <= $3)
  AND ($4::text IS NULL OR merchant_id = $4)
  AND ($5::text IS NULL OR community_id IS NULL OR community_id = $5)
  AND ($6::text IS NULL OR kind = $6)
  AND ($7::bool IS NULL OR $7 = (active
        AND (valid_from IS NULL OR valid_from <= now())
        AND (valid_until IS NULL OR valid_until > now())
        AND (stock IS NULL OR stock > 0)))
  AND ($9::bigint IS NULL OR (points, id) > ($9, $10::uuid))
ORDER BY points, id
LIMIT $8;

-- name: get_reward
SELECT * FROM reward WHERE id = $1 AND org_id = $2;

-- name: update_reward
-- NULL leaves a field as it is; $6 true clears valid_until
UPDATE reward SET
    active = COALESCE($3, active),
    stock = CASE WHEN $4::int IS NULL THEN stock ELSE $4 END,
    valid_until = CASE WHEN $6 THEN NULL ELSE COALESCE($5, valid_until) END
WHERE id = $1 AND org_id = $2
RETURNING *;

-- name: ensure_wallet
-- a wallet is (organisation $1, account $2): points of one scheme only
INSERT INTO wallet (org_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING;

-- name: lock_wallet
SELECT org_id, account_id, ledger_balance, held FROM wallet
WHERE org_id = $1 AND account_id = $2
FOR UPDATE;

-- name: get_wallet
SELECT org_id, account_id, ledger_balance, held, ledger_seq, updated_at FROM wallet
WHERE org_id = $1 AND account_id = $2;

-- name: recent_credits
-- the organisation's credits still inside its fraud window ($3 seconds), not reversed
SELECT COALESCE(sum(amount), 0)::bigint FROM wallet_credit
WHERE org_id = $1 AND account_id = $2 AND NOT reversed
  AND recorded_at > now() - make_interval(secs => $3);

-- name: fraud_window
SELECT fraud_window_seconds FROM org_setting WHERE org_id = $1;

-- name: get_org_setting
SELECT org_id, fraud_window_seconds, updated_at FROM org_setting WHERE org_id = $1;

-- name: put_org_setting
INSERT INTO org_setting (org_id, fraud_window_seconds) VALUES ($1, $2)
ON CONFLICT (org_id) DO UPDATE SET fraud_window_seconds = $2, updated_at = now()
RETURNING org_id, fraud_window_seconds, updated_at;

-- name: insert_credit
INSERT INTO wallet_credit (entry_id, account_id, org_id, completion_id, amount, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING;

-- name: reverse_credit
UPDATE wallet_credit SET reversed = true
WHERE org_id = $1 AND account_id = $2 AND completion_id = $3;

-- name: lock_reward
SELECT * FROM reward WHERE id = $1 AND org_id = $2 FOR UPDATE;

-- name: release_stock
UPDATE reward SET stock = stock + 1 WHERE id = $1 AND stock IS NOT NULL;

-- name: place_redemption
-- lock, check, hold, take the item, record the redemption and its event: one call
-- (migration 0005_place_redemption.sql says how, and how a refusal comes back)
SELECT * FROM redeem_place($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);

-- name: get_redemption
SELECT r.*, rw.merchant_id FROM redemption r JOIN reward rw ON rw.id = r.reward_id
WHERE r.id = $1 AND r.org_id = $2;

-- name: lock_redemption
SELECT r.*, rw.merchant_id FROM redemption r JOIN reward rw ON rw.id = r.reward_id
WHERE r.id = $1 AND r.org_id = $2
FOR UPDATE OF r;

-- name: list_redemptions
SELECT r.*, rw.merchant_id FROM redemption r JOIN reward rw ON rw.id = r.reward_id
WHERE r.org_id = $1
  AND ($2::text IS NULL OR r.account_id = $2)
  AND ($3::text IS NULL OR rw.merchant_id = $3)
  AND ($4::text IS NULL OR r.status = $4)
  AND ($6::timestamptz IS NULL OR (r.created_at, r.id) < ($6, $7::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT $5;

-- name: apply_ledger_balance
-- the (org $1, account $2) chain's balance_after ($3) and account_seq ($4)
UPDATE wallet SET ledger_balance = $3, ledger_seq = $4, updated_at = now()
WHERE org_id = $1 AND account_id = $2 AND ledger_seq < $4;

-- name: confirm_redemption
-- the voucher lives for the reward's own time, else the service's default ($4 seconds)
UPDATE redemption r SET status = 'confirmed', confirmed_at = now(), voucher_code = $2,
    debit_entry_id = $3,
    expires_at = now() + make_interval(secs => COALESCE(
        (SELECT voucher_ttl_seconds FROM reward WHERE id = r.reward_id), $4))
WHERE r.id = $1 AND r.status = 'pending'
RETURNING r.org_id, r.account_id, r.points;

-- name: settle_cancelling
UPDATE redemption SET status = 'cancelled', debit_entry_id = $2, cancelled_event_id = $3,
    asked_at = now()
WHERE id = $1 AND status = 'cancelling'
RETURNING *;

-- name: cancel_redemption
UPDATE redemption SET status = $2, cancelled_event_id = $3, cancelled_at = $6,
    cancelled_by = $4, cancel_reason = $5, asked_at = now()
WHERE id = $1
RETURNING *;

-- name: record_refund
UPDATE redemption SET refunded_at = now(), refund_entry_id = $2
WHERE id = $1 AND refunded_at IS NULL;

-- name: awaiting_debit
-- SKIP LOCKED and no other lock taken: this never waits, so it cannot join a deadlock
SELECT * FROM redemption
WHERE status IN ('pending', 'cancelling') AND asked_at < now() - make_interval(secs => $1)
ORDER BY asked_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: awaiting_refund
SELECT * FROM redemption
WHERE cancelled_event_id IS NOT NULL AND refunded_at IS NULL
  AND asked_at < now() - make_interval(secs => $1)
ORDER BY asked_at
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: mark_asked
UPDATE redemption SET asked_at = now() WHERE id = ANY($1::uuid[]);

-- name: due_expiries
SELECT id, account_id, org_id FROM redemption
WHERE status = 'confirmed' AND expires_at <= now()
ORDER BY expires_at
LIMIT $1;

-- name: lock_expiring
SELECT * FROM redemption
WHERE id = $1 AND status = 'confirmed' AND expires_at <= now()
FOR UPDATE;

-- name: fulfil_redemption
UPDATE redemption SET status = 'fulfilled', fulfilled_at = now(), fulfilled_by = $2
WHERE id = $1 AND status = 'confirmed'
RETURNING *;

-- name: release_hold
UPDATE wallet SET held = held - $3, updated_at = now() WHERE org_id = $1 AND account_id = $2;

-- name: audit_redemptions
-- oldest first, strictly after the cursor; rows younger than the settle time ($5 seconds,
-- 0 by default) are left for a later call
SELECT id, account_id, reward_id, points, status, placed_event_id, cancelled_event_id,
       created_at, cancelled_at
FROM redemption
WHERE org_id = $1
  AND (created_at, id) > ($2::timestamptz, $3::uuid)
  AND created_at < now() - make_interval(secs => $5)
ORDER BY created_at, id
LIMIT $4;

-- name: frozen_wallets
-- the organisation's wallets that a reversal took below what is spent
SELECT w.account_id, w.ledger_balance, w.held, w.updated_at FROM wallet w
WHERE w.org_id = $1 AND w.ledger_balance - w.held < 0 AND ($3::text IS NULL OR w.account_id > $3)
ORDER BY w.account_id
LIMIT $2;

-- name: wallet_in_org
-- staff of an organisation see an account's wallet in their organisation only, and only if
-- the ledger or a redemption has made one there
SELECT EXISTS (SELECT 1 FROM wallet WHERE org_id = $1 AND account_id = $2);

-- name: voucher_failures
-- wrong codes within the window ($3 seconds), newest first: for this redemption ($1) and
-- for its merchant ($2, within the redemption's organisation $4)
SELECT
    ARRAY(SELECT at FROM voucher_attempt
          WHERE redemption_id = $1 AND at > clock_timestamp() - make_interval(secs => $3)
          ORDER BY at DESC LIMIT $5) AS by_redemption,
    ARRAY(SELECT at FROM voucher_attempt
          WHERE org_id = $4 AND merchant_id = $2
            AND at > clock_timestamp() - make_interval(secs => $3)
          ORDER BY at DESC LIMIT $6) AS by_merchant,
    clock_timestamp() AS now;

-- name: record_voucher_failure
INSERT INTO voucher_attempt (org_id, merchant_id, redemption_id) VALUES ($1, $2, $3);

-- name: redeemed_figure
-- the organisation's redemptions handed over in [$2, $3), in all: how many, their points
SELECT count(*)::int AS fulfilled, coalesce(sum(points), 0)::bigint AS points
FROM redemption
WHERE org_id = $1 AND status = 'fulfilled' AND fulfilled_at >= $2 AND fulfilled_at < $3;

-- name: redemptions_report
-- the organisation's redemptions handed over in [$2, $3), per merchant: how many, to how
-- many members, the points they took and their money value (rewards with one)
SELECT w.merchant_id, m.name_zh, m.name_en,
       count(*)::int AS fulfilled,
       count(DISTINCT r.account_id)::int AS members,
       sum(r.points)::bigint AS points,
       coalesce(sum(w.value_fen::bigint) FILTER (WHERE w.value_fen IS NOT NULL), 0)::bigint
           AS value_fen,
       count(*) FILTER (WHERE w.value_fen IS NULL)::int AS unvalued
FROM redemption r
JOIN reward w ON w.id = r.reward_id
LEFT JOIN merchant m ON m.org_id = w.org_id AND m.id = w.merchant_id
WHERE r.org_id = $1 AND r.status = 'fulfilled' AND r.fulfilled_at >= $2 AND r.fulfilled_at < $3
GROUP BY w.merchant_id, m.name_zh, m.name_en
ORDER BY w.merchant_id;

-- name: redemptions_report_members
-- the distinct members of the whole period (a member may redeem at several merchants)
SELECT count(DISTINCT r.account_id)::int
FROM redemption r
WHERE r.org_id = $1 AND r.status = 'fulfilled' AND r.fulfilled_at >= $2 AND r.fulfilled_at < $3;
