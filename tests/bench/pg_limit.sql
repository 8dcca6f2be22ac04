-- pgbench script for the `pg_limit` scenario of tests/bench/run: the
-- database work of a batch of :n step lifecycles, the way a scheduler that
-- batches does it.  Two commits, because a claim must be durable before the
-- step runs and an outcome durable before a dependent starts:
--   1. claim: lock :n ready rows (SKIP LOCKED), mark them in_progress with a
--      fresh lease token, one audit row each;
--   2. complete: mark them done, one audit row each, and make them ready
--      again (the row stands for the next step of a chain, so the table
--      never runs dry).
-- Per step: 2 row updates + 2 audit inserts.  tests/bench/run counts the
-- 'complete' audit rows written per second (a completion may pick up
-- another client's claimed rows; the work per step is the same).
\set n 100
BEGIN;
WITH c AS (
  SELECT id FROM q WHERE status = 'pending' AND next_attempt_at <= now()
  ORDER BY next_attempt_at LIMIT :n FOR UPDATE SKIP LOCKED),
u AS (
  UPDATE q SET status = 'in_progress', lease_token = nextval('q_tokens'),
    attempts = q.attempts + 1, updated_at = now()
  FROM c WHERE q.id = c.id RETURNING q.id, q.lease_token, q.attempts),
a AS (
  INSERT INTO audit (step_id, from_state, to_state, metadata)
  SELECT id, 'pending', 'in_progress', jsonb_build_object('attempt', attempts)
  FROM u RETURNING step_id)
SELECT count(*) FROM u;
COMMIT;
BEGIN;
WITH c AS (
  SELECT id FROM q WHERE status = 'in_progress'
  ORDER BY lease_token DESC LIMIT :n FOR UPDATE SKIP LOCKED),
u AS (
  UPDATE q SET status = 'pending', lease_token = NULL,
    next_attempt_at = clock_timestamp(), updated_at = now()
  FROM c WHERE q.id = c.id RETURNING q.id),
a AS (
  INSERT INTO audit (step_id, from_state, to_state, metadata)
  SELECT id, 'in_progress', 'complete', '{}'::jsonb FROM u RETURNING step_id)
SELECT count(*) FROM u;
COMMIT;
