-- 001_schema.sql - the durable state of taskerd.
--
-- Every task and step lives here; the supervisor keeps nothing that cannot be
-- rebuilt from these rows.  Status columns are text with CHECK constraints so
-- that psql shows them readably at 3 a.m.; transitions tables are the audit
-- history and are only ever appended to.

CREATE TABLE namespaces (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL UNIQUE,
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE templates (
	id		bigserial PRIMARY KEY,
	namespace_id	bigint NOT NULL REFERENCES namespaces(id),
	name		text NOT NULL,
	version		text NOT NULL,
	definition	jsonb NOT NULL,		-- the template as loaded
	loaded_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (namespace_id, name, version)
);

CREATE TABLE tasks (
	id		bigserial PRIMARY KEY,
	template_id	bigint NOT NULL REFERENCES templates(id),
	status		text NOT NULL DEFAULT 'pending' CHECK (status IN
			    ('pending', 'in_progress', 'complete', 'error',
			     'cancelled', 'resolved_manually')),
	context		jsonb NOT NULL DEFAULT '{}',
	identity_hash	text,			-- NULL under always_unique
	initiator	text,
	source_system	text,
	reason		text,
	tags		jsonb NOT NULL DEFAULT '[]',
	correlation_id	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	completed_at	timestamptz
);
CREATE UNIQUE INDEX tasks_identity ON tasks (template_id, identity_hash)
	WHERE identity_hash IS NOT NULL;
CREATE INDEX tasks_status ON tasks (status, id);
CREATE INDEX tasks_template ON tasks (template_id, id);

CREATE TABLE steps (
	id		bigserial PRIMARY KEY,
	task_id		bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	name		text NOT NULL,
	position	int NOT NULL,		-- order in the template
	handler		text NOT NULL,
	service		text,			-- dependent_system, if any
	status		text NOT NULL DEFAULT 'pending' CHECK (status IN
			    ('pending', 'enqueued', 'in_progress',
			     'waiting_for_retry', 'complete', 'error',
			     'cancelled', 'resolved_manually')),
	-- Parents not yet complete or resolved_manually: a step is ready when
	-- this is 0, so readiness is one indexed lookup, not a join per step.
	remaining_parents int NOT NULL DEFAULT 0,
	attempts	int NOT NULL DEFAULT 0,
	retry_limit	int NOT NULL CHECK (retry_limit >= 1),
	-- The template's attempt budget; an operator's retry grants it anew.
	attempt_budget	int NOT NULL CHECK (attempt_budget >= 1),
	retryable	boolean NOT NULL DEFAULT true,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	lease_owner	text,
	lease_token	bigint,
	lease_expires_at timestamptz,
	timeout_ms	int NOT NULL,
	inputs		jsonb,
	results		jsonb,
	last_error	jsonb,			-- {code, message, http_status}
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	started_at	timestamptz,
	completed_at	timestamptz,
	UNIQUE (task_id, name)
);
-- The scheduler's claim: ready steps in order of when they became due.
CREATE INDEX steps_ready ON steps (next_attempt_at)
	WHERE status IN ('pending', 'waiting_for_retry')
	  AND remaining_parents = 0;
-- The lease sweeper: claimed steps by expiry.
CREATE INDEX steps_leased ON steps (lease_expires_at)
	WHERE status IN ('enqueued', 'in_progress');
CREATE SEQUENCE step_lease_tokens;

CREATE TABLE step_edges (
	task_id		bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	from_step_id	bigint NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
	to_step_id	bigint NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
	PRIMARY KEY (from_step_id, to_step_id)
);
CREATE INDEX step_edges_to ON step_edges (to_step_id);

CREATE TABLE task_transitions (
	id		bigserial PRIMARY KEY,
	task_id		bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	from_state	text,
	to_state	text NOT NULL,
	metadata	jsonb NOT NULL DEFAULT '{}',
	created_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX task_transitions_task ON task_transitions (task_id, id);

CREATE TABLE step_transitions (
	id		bigserial PRIMARY KEY,
	step_id		bigint NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
	task_id		bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	from_state	text,
	to_state	text NOT NULL,
	metadata	jsonb NOT NULL DEFAULT '{}',
	created_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX step_transitions_step ON step_transitions (step_id, id);
CREATE INDEX step_transitions_task ON step_transitions (task_id, id);
