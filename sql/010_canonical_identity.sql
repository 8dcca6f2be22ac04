-- 010_canonical_identity.sql - a strict template's identity reads numbers
-- as numbers.
--
-- The identity hash was taken over the context's jsonb text, which keeps
-- a number's scale as written: {"n": 5} and {"n": 5.0} (or 1.5 and 1.50)
-- made two tasks, though they are the same JSON.  It is now taken over the
-- context with every number at its least scale.  A context without such a
-- number hashes as before; a task created before this migration whose
-- context had one is not found as a duplicate of a new one.
--
-- A function only: no table is touched.  (It calls itself, which its body
-- may only do once it exists: the check of bodies is off while it is
-- created.)
SET LOCAL check_function_bodies = off;
CREATE FUNCTION taskerd_canonical(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE jsonb_typeof(j)
	WHEN 'number' THEN to_jsonb(trim_scale(j::numeric))
	WHEN 'object' THEN (SELECT coalesce(jsonb_object_agg(e.key,
		taskerd_canonical(e.value)), '{}'::jsonb) FROM jsonb_each(j) e)
	WHEN 'array' THEN (SELECT coalesce(jsonb_agg(taskerd_canonical(a.v)
		ORDER BY a.i), '[]'::jsonb)
		FROM jsonb_array_elements(j) WITH ORDINALITY a(v, i))
	ELSE j END
$$;
