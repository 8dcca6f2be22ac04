-- 006_prune.sql - no foreign key on steps.task_id; pruning in one call.
--
-- The key checked each new step against the tasks row the same statement
-- had inserted a moment before: a lookup and a row lock per step, a
-- quarter of the buffers a creation touched.  taskerd writes a task and its
-- steps in one statement and never deletes either.
ALTER TABLE steps DROP CONSTRAINT steps_task_id_fkey;

-- With that key gone no per-task table cascades from tasks any more (004
-- dropped the others), so finished tasks are pruned with this function,
-- which deletes them with their steps, edges and transitions:
--	SELECT taskerd_prune(now() - interval '30 days');
-- It takes at most max_tasks tasks a call (run it until it answers 0), the
-- oldest first, and skips tasks whose rows someone holds locked.  Finished:
-- complete, error, cancelled or resolved_manually, and not updated since
-- finished_before.  (An 'error' task can still be retried by an operator;
-- once pruned, it cannot.)
CREATE FUNCTION taskerd_prune(finished_before timestamptz,
    max_tasks int DEFAULT 10000) RETURNS bigint
LANGUAGE sql AS $$
	WITH t AS (
		SELECT id FROM tasks
		WHERE status IN ('complete', 'error', 'cancelled',
		    'resolved_manually') AND updated_at < finished_before
		ORDER BY id LIMIT max_tasks FOR UPDATE SKIP LOCKED),
	s AS (
		DELETE FROM steps WHERE task_id IN (SELECT id FROM t)
		RETURNING id),
	e AS (
		DELETE FROM step_edges WHERE from_step_id IN (SELECT id FROM s)),
	st AS (
		DELETE FROM step_transitions
		WHERE task_id IN (SELECT id FROM t)),
	tt AS (
		DELETE FROM task_transitions
		WHERE task_id IN (SELECT id FROM t)),
	d AS (
		DELETE FROM tasks WHERE id IN (SELECT id FROM t) RETURNING id)
	SELECT count(*) FROM d
$$;
