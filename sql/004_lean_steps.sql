-- 004_lean_steps.sql - less work per step on the hot path.
--
-- Every change of a step's status is a non-HOT update (status is in the
-- partial indexes' predicates), so each index on steps and step_transitions
-- is written several times per step.  A step's history is read per task
-- (step_transitions_task serves the step's own history too: a task has few
-- steps), so the per-step index goes.
DROP INDEX step_transitions_step;

-- The audit tables are appended to only by taskerd, in the transaction that
-- changes the row they describe; their foreign keys cost two row locks per
-- transition (a third of the time of applying a batch of outcomes) and
-- protect nothing taskerd does.  taskerd never deletes tasks; whoever prunes
-- old tasks deletes their transitions with them.
ALTER TABLE step_transitions DROP CONSTRAINT step_transitions_step_id_fkey;
ALTER TABLE step_transitions DROP CONSTRAINT step_transitions_task_id_fkey;
ALTER TABLE task_transitions DROP CONSTRAINT task_transitions_task_id_fkey;

-- Edges are written once, by the statement that creates their task and
-- steps, and never change; checking them against rows inserted a moment
-- before by the same statement cost three lookups and row locks per edge.
ALTER TABLE step_edges DROP CONSTRAINT step_edges_task_id_fkey;
ALTER TABLE step_edges DROP CONSTRAINT step_edges_from_step_id_fkey;
ALTER TABLE step_edges DROP CONSTRAINT step_edges_to_step_id_fkey;
