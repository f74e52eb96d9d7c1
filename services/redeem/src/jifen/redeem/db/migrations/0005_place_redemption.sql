-- Placing a redemption in one statement (issue 18): the idempotency scope's lock, the replay
-- check, the wallet and reward row locks, the counts, the decision, the hold, the stock, the
-- redemption row and its outbox row, all in one call. It was 9-10 round trips, 6-7 of them
-- while the wallet row was locked; now the locks are held only while PostgreSQL itself works.
--
-- Same lock order as before (idempotency scope, wallet, reward) and the same decision, in
-- the same order, as jifen.redeem.domain.wallet.decide. A refusal raises (P0001), so nothing
-- the call did stays (the wallet row it made, like the old transaction's rollback); its
-- DETAIL carries the locked figures, from which the handler lets decide() say which refusal
-- and with which numbers, so the problem bodies are decide()'s own. The placed event's
-- payload is built here, byte for byte what jifen.redeem.handlers.events.placed_event
-- rebuilds from the row (a test compares them).
--
-- Returns the redemption: the new one (its id is p_id), or the caller's earlier one under the
-- same key (a replay: another id). The caller's clock decides the validity window (p_now),
-- as it did.
CREATE FUNCTION redeem_place(
    p_org text,
    p_by text,
    p_key text,
    p_account text,
    p_reward uuid,
    p_community text,
    p_id uuid,
    p_event_id uuid,
    p_now timestamptz,
    p_topic text,
    p_event_type text,
    p_source text
) RETURNS SETOF redemption
LANGUAGE plpgsql AS $$
DECLARE
    prev     redemption;
    placed   redemption;
    rw       reward;
    w_balance bigint := 0;
    w_held   bigint := 0;
    win      integer;
    recent   bigint := 0;
    today    integer := 0;
    month    integer := 0;
    avail    bigint;
    maturing bigint;
    refused  text;
    stamp    text;
BEGIN
    -- a concurrent retry with the same key (for any account) waits here, then sees it
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'redeem-key' || chr(31) || p_org || chr(31) || p_by || chr(31) || p_key, 0));
    SELECT * INTO prev FROM redemption r
    WHERE r.org_id = p_org AND r.requested_by = p_by AND r.idempotency_key = p_key
      AND r.key_scoped;
    IF FOUND THEN
        IF prev.reward_id <> p_reward OR prev.account_id <> p_account THEN
            RAISE EXCEPTION 'jifen:idempotency_key_reused' USING DETAIL = prev.id::text;
        END IF;
        RETURN NEXT prev;
        RETURN;
    END IF;

    INSERT INTO wallet (org_id, account_id) VALUES (p_org, p_account) ON CONFLICT DO NOTHING;
    -- the organisation's setting first: it needs no lock
    SELECT s.fraud_window_seconds INTO win FROM org_setting s WHERE s.org_id = p_org;
    win := COALESCE(win, 0);
    SELECT w.ledger_balance, w.held INTO w_balance, w_held FROM wallet w
    WHERE w.org_id = p_org AND w.account_id = p_account
    FOR UPDATE;
    w_balance := COALESCE(w_balance, 0);
    w_held := COALESCE(w_held, 0);
    IF win > 0 THEN
        SELECT COALESCE(sum(c.amount), 0)::bigint INTO recent FROM wallet_credit c
        WHERE c.org_id = p_org AND c.account_id = p_account AND NOT c.reversed
          AND c.recorded_at > now() - make_interval(secs => win);
    END IF;

    SELECT * INTO rw FROM reward x WHERE x.id = p_reward AND x.org_id = p_org FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'jifen:no_reward';
    END IF;
    -- the reward lock serialises redemptions of this reward, the wallet lock this member's:
    -- both counts are exact
    IF rw.stock IS NULL AND rw.daily_quota IS NOT NULL THEN
        SELECT count(*)::int INTO today FROM redemption r
        WHERE r.reward_id = p_reward
          AND r.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          AND r.status NOT IN ('cancelling', 'cancelled', 'expired');
    END IF;
    IF rw.monthly_limit IS NOT NULL THEN
        SELECT count(*)::int INTO month FROM redemption r
        WHERE r.account_id = p_account AND r.reward_id = p_reward
          AND r.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
          AND r.status NOT IN ('cancelling', 'cancelled', 'expired');
    END IF;

    -- decide(), in its order
    avail := w_balance - w_held;
    maturing := LEAST(recent, GREATEST(avail, 0));
    refused := CASE
        WHEN NOT rw.active THEN 'reward_inactive'
        WHEN rw.valid_from IS NOT NULL AND p_now < rw.valid_from THEN 'reward_inactive'
        WHEN rw.valid_until IS NOT NULL AND p_now >= rw.valid_until THEN 'reward_inactive'
        WHEN rw.community_id IS NOT NULL AND p_community IS DISTINCT FROM rw.community_id
            THEN 'community_restricted'
        WHEN avail < 0 THEN 'account_frozen'
        WHEN rw.stock IS NOT NULL AND rw.stock < 1 THEN 'out_of_stock'
        WHEN rw.stock IS NULL AND rw.daily_quota IS NOT NULL AND today >= rw.daily_quota
            THEN 'out_of_stock'
        WHEN rw.monthly_limit IS NOT NULL AND month >= rw.monthly_limit THEN 'member_limit'
        WHEN avail - maturing < rw.points THEN 'insufficient_points'
    END;
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'jifen:refused:%', refused USING DETAIL = json_build_object(
            'ledger_balance', w_balance,
            'held', w_held,
            'recent_credits', recent,
            'points', rw.points,
            'stock', rw.stock,
            'active', rw.active,
            'daily_quota', rw.daily_quota,
            'monthly_limit', rw.monthly_limit,
            'valid_from', to_char(rw.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            'valid_until', to_char(rw.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            'community_id', rw.community_id,
            'reward_today', today,
            'member_this_month', month)::text;
    END IF;

    -- hold, take the item if it is counted, record. created_at is the clock at insert (after
    -- the locks were granted): the auditors' feed pages by it and must not see rows commit
    -- far behind their time
    UPDATE wallet w SET held = w.held + rw.points, updated_at = now()
    WHERE w.org_id = p_org AND w.account_id = p_account;
    UPDATE reward x SET stock = x.stock - 1 WHERE x.id = p_reward AND x.stock IS NOT NULL;
    INSERT INTO redemption (id, account_id, org_id, reward_id, points, requested_by,
                            idempotency_key, placed_event_id, community_id, created_at, asked_at)
    VALUES (p_id, p_account, p_org, p_reward, rw.points, p_by, p_key, p_event_id, p_community,
            clock_timestamp(), clock_timestamp())
    RETURNING * INTO placed;

    -- the placed event, as jifen.kernel.contracts.envelope and encode() make it
    stamp := to_json(to_char(placed.created_at AT TIME ZONE 'UTC',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text;
    INSERT INTO outbox (topic, key, event_id, event_type, payload)
    VALUES (p_topic, convert_to(p_account, 'UTF8'), p_event_id, p_event_type, convert_to(
        '{"specversion":"1.0","id":' || to_json(p_event_id::text)::text
        || ',"source":' || to_json(p_source)::text
        || ',"type":' || to_json(p_event_type)::text
        || ',"subject":' || to_json(placed.account_id)::text
        || ',"time":' || stamp
        || ',"datacontenttype":"application/json","dataschema":'
        || to_json('urn:jifen:schema:' || p_event_type)::text
        || ',"data":{"redemption_id":' || to_json(placed.id::text)::text
        || ',"account_id":' || to_json(placed.account_id)::text
        || ',"org_id":' || to_json(placed.org_id)::text
        || ',"reward_id":' || to_json(placed.reward_id::text)::text
        || ',"points":' || placed.points::text
        || ',"placed_at":' || stamp || '}}', 'UTF8'));
    RETURN NEXT placed;
END $$;
