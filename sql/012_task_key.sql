-- 012_task_key.sql - a task shows the idempotency key it was created with.
--
-- A key is the identity of a task of a caller_provided template, and of an
-- always_unique one when the client sent one; a strict template's identity
-- is its context, and a key sent with it is not kept (the answer's null
-- says so).  The key is stored in identity_hash as 'key:' || key.
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
		'idempotency_key', CASE WHEN t.identity_hash LIKE 'key:%'
		    THEN substr(t.identity_hash, 5) END,
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
