-- 003_nodes.sql - nodes, and claims that last as long as their node.
--
-- A claim used to carry its own expiry (step timeout + grace).  Claims are
-- now taken ahead of a free worker ('enqueued': the step is this node's to
-- start; 'in_progress': a worker runs it) and belong to their node: they are
-- valid while the node's heartbeat keeps its row's lease_expires_at in the
-- future.  Any live node takes over the claims of a node whose lease ran
-- out; the node itself enforces each step's timeout.
CREATE TABLE nodes (
	id		text PRIMARY KEY,	-- the lease_owner of its claims
	host		text,
	pid		int,
	version		text,
	started_at	timestamptz NOT NULL DEFAULT now(),
	heartbeat_at	timestamptz NOT NULL DEFAULT now(),
	lease_expires_at timestamptz NOT NULL
);

DROP INDEX steps_leased;
ALTER TABLE steps DROP COLUMN lease_expires_at;
-- The sweeper: claimed steps by owner.
CREATE INDEX steps_claimed ON steps (lease_owner)
	WHERE status IN ('enqueued', 'in_progress');
