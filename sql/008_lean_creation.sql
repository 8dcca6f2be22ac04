-- 008_lean_creation.sql - creating a task writes less.
--
-- A step lists its children; there is no edges table any more.  It held
-- one row and two index entries per edge, written when a task was created
-- and looked up when a parent completed.  The edges never change, so a
-- step now carries the ids of its children (steps.children), written with
-- the step itself; the statement that completes a step has them in the row
-- it updates.  step_edges stays as a view of the same columns, for psql.
--
-- On a large database this rewrites every step that has children, under
-- the table's lock: run it in a quiet moment.
ALTER TABLE steps ADD COLUMN children bigint[] NOT NULL DEFAULT '{}';

UPDATE steps s SET children = e.ids
FROM (SELECT from_step_id, array_agg(to_step_id ORDER BY to_step_id) AS ids
      FROM step_edges GROUP BY from_step_id) e
WHERE s.id = e.from_step_id;

DROP TABLE step_edges;
CREATE VIEW step_edges AS
	SELECT s.task_id, s.id AS from_step_id, c.id AS to_step_id
	FROM steps s CROSS JOIN LATERAL unnest(s.children) AS c(id);

-- A step's parents are the steps of its task that list it.
CREATE OR REPLACE FUNCTION taskerd_step_json(s steps) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'step_id', s.id,
		'name', s.name,
		'status', s.status,
		'handler', s.handler,
		'service', s.service,
		'depends_on', coalesce((SELECT jsonb_agg(p.name ORDER BY p.position)
			FROM steps p WHERE p.task_id = s.task_id
			  AND s.id = ANY(p.children)), '[]'::jsonb),
		'attempts', s.attempts,
		'retry_limit', s.retry_limit,
		'retryable', s.retryable,
		'timeout_ms', s.timeout_ms,
		'next_attempt_at', CASE WHEN s.status IN ('pending',
			'waiting_for_retry') THEN s.next_attempt_at END,
		'started_at', s.started_at,
		'completed_at', s.completed_at,
		'results', s.results,
		'last_error', s.last_error)
$$;

-- As in 006, without the edges (they go with their steps).
CREATE OR REPLACE FUNCTION taskerd_prune(finished_before timestamptz,
    max_tasks int DEFAULT 10000) RETURNS bigint
LANGUAGE sql AS $$
	WITH t AS (
		SELECT id FROM tasks
		WHERE status IN ('complete', 'error', 'cancelled',
		    'resolved_manually') AND updated_at < finished_before
		ORDER BY id LIMIT max_tasks FOR UPDATE SKIP LOCKED),
	s AS (
		DELETE FROM steps WHERE task_id IN (SELECT id FROM t)),
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

-- Every new task looked up and share-locked its template's row (the
-- foreign key), the same row for every task of a template, from every
-- connection that creates tasks.  taskerd registers templates and never
-- deletes one.
ALTER TABLE tasks DROP CONSTRAINT tasks_template_id_fkey;
