-- 007_first_steps.sql - the general claim serves started tasks first.
--
-- The general claim took the oldest ready steps, by next_attempt_at, which
-- for a step never tried is when its task was created.  A child that a
-- batch of outcomes left unclaimed (its node had no room) could then wait
-- behind the first steps of every older task not yet started - under a
-- burst of creations, hundreds, for a second and more.  A step now knows
-- whether it is one of its task's first steps, and the claim takes the
-- first attempts of first steps (new tasks) after everything else: the
-- steps of tasks under way, and retries.
ALTER TABLE steps ADD COLUMN first_step boolean NOT NULL DEFAULT false;

-- Only ready steps are ordered; the others' flag is never read again
-- unless an operator makes them ready, and then they are retries.
UPDATE steps s SET first_step = true
WHERE s.status IN ('pending', 'waiting_for_retry')
  AND s.remaining_parents = 0 AND s.attempts = 0
  AND NOT EXISTS (SELECT 1 FROM step_edges e WHERE e.to_step_id = s.id);

DROP INDEX steps_ready;
CREATE INDEX steps_ready ON steps ((first_step AND attempts = 0),
	next_attempt_at)
	WHERE status IN ('pending', 'waiting_for_retry')
	  AND remaining_parents = 0;
