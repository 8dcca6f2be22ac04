-- 005_audit_keys.sql - one index per audit table.
--
-- Transitions are read per task, in order: (task_id, id).  Their id index
-- served only its uniqueness, and cost a second index write for each of
-- the two or three transitions a step writes.  A primary key on
-- (task_id, id) keeps both the order and the uniqueness in one index.
-- (On a large table this rebuilds the index under a lock: run it in a
-- quiet moment.)
ALTER TABLE step_transitions DROP CONSTRAINT step_transitions_pkey,
	ADD PRIMARY KEY (task_id, id);
DROP INDEX step_transitions_task;

ALTER TABLE task_transitions DROP CONSTRAINT task_transitions_pkey,
	ADD PRIMARY KEY (task_id, id);
DROP INDEX task_transitions_task;
