-- The relay claims outbox rows with SELECT … FOR UPDATE SKIP LOCKED, which needs UPDATE.
GRANT UPDATE ON outbox TO jifen_points_app;
