-- 002_api_views.sql - the JSON shapes the HTTP API answers with.
--
-- Built in SQL so that a read is one round trip and the API, tasker-ctl and
-- psql all see the same thing.  CREATE OR REPLACE: later migrations may
-- extend these shapes.

CREATE OR REPLACE FUNCTION taskerd_step_json(s steps) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'step_id', s.id,
		'name', s.name,
		'status', s.status,
		'handler', s.handler,
		'service', s.service,
		'depends_on', coalesce((SELECT jsonb_agg(p.name ORDER BY p.position)
			FROM step_edges e JOIN steps p ON p.id = e.from_step_id
			WHERE e.to_step_id = s.id), '[]'::jsonb),
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

CREATE OR REPLACE FUNCTION taskerd_task_json(t tasks, with_steps boolean)
RETURNS jsonb LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'task_id', t.id,
		'namespace', n.name,
		'name', tp.name,
		'version', tp.version,
		'status', t.status,
		'context', t.context,
		'initiator', t.initiator,
		'source_system', t.source_system,
		'reason', t.reason,
		'tags', t.tags,
		'correlation_id', t.correlation_id,
		'created_at', t.created_at,
		'updated_at', t.updated_at,
		'completed_at', t.completed_at)
	    || CASE WHEN with_steps THEN jsonb_build_object('steps',
		coalesce((SELECT jsonb_agg(taskerd_step_json(s) ORDER BY s.position)
		    FROM steps s WHERE s.task_id = t.id), '[]'::jsonb))
	       ELSE '{}'::jsonb END
	FROM templates tp JOIN namespaces n ON n.id = tp.namespace_id
	WHERE tp.id = t.template_id
$$;
