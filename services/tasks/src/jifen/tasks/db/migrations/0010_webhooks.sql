-- Signed webhooks (issue 21, part 5): apps subscribe to event types of their organisation;
-- every event the tasks service records in its outbox is fanned out, in the same
-- transaction, to the subscriptions that want it (a trigger, so no code path that publishes
-- can forget it), and the tasks worker posts each with an HMAC signature, retrying with
-- backoff; every attempt is logged.
CREATE TABLE webhook (
    id           uuid        PRIMARY KEY,
    org_id       text        NOT NULL,
    url          text        NOT NULL,
    event_types  text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    -- the HMAC key: shown once when made; kept as it is, since it must sign
    secret       text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz,
    disabled_by  text
);
CREATE INDEX webhook_org ON webhook (org_id) WHERE disabled_at IS NULL;

CREATE TABLE webhook_delivery (
    id               bigserial   PRIMARY KEY,
    webhook_id       uuid        NOT NULL REFERENCES webhook (id),
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    payload          bytea       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    -- an event published again (a completion republished until credited) is delivered once
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempt (
    delivery_id  bigint      NOT NULL REFERENCES webhook_delivery (id),
    attempt      integer     NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    http_status  integer,
    error        text,
    duration_ms  integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook WHERE disabled_at IS NULL AND NEW.event_type = ANY (event_types)) THEN
        INSERT INTO webhook_delivery (webhook_id, event_id, event_type, payload)
        SELECT w.id, NEW.event_id, NEW.event_type, NEW.payload
        FROM webhook w
        WHERE w.disabled_at IS NULL
          AND NEW.event_type = ANY (w.event_types)
          AND w.org_id = convert_from(NEW.payload, 'UTF8')::jsonb -> 'data' ->> 'org_id'
        ON CONFLICT (webhook_id, event_id) DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_webhooks AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION webhook_fan_out();
