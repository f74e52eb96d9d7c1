-- A call sent again with the same Idempotency-Key (a retry over a bad network) is the same
-- call: nobody is told twice. Keys are per caller.
ALTER TABLE call ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX call_key ON call (org_id, created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
