"""One outcome the database refuses does not stop a node from writing all
the others.

Outcomes are written in batches, one transaction each.  An outcome the
database cannot store (here a trigger the test adds refuses to complete one
step; in life, say, a value a buggy handler produced) used to fail every
batch it was in, for as long as the node ran: no other outcome was written
either.  Now the node applies the records one per batch until it finds the
refused one, which fails its step (code outcome_not_stored, the database's
reason in the message); every other task completes.
"""

import harness

NS = "refuse"

TEMPLATE = """\
name: work
namespace_name: refuse
version: 1.0.0
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
"""


def test_refused_outcome_fails_its_step_only(taskerd, pg):
    t = taskerd(templates={"work.yaml": TEMPLATE}, workers=4)
    pg.execute(t.db, """
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status = 'complete' AND EXISTS (SELECT 1 FROM tasks
                WHERE id = NEW.task_id AND context ? 'poison') THEN
                RAISE EXCEPTION 'refused by the test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE UPDATE ON steps
            FOR EACH ROW EXECUTE FUNCTION refuse_poison();
    """)
    ids = []
    for i in range(30):
        ctx = {"n": i}
        if i == 7:
            ctx["poison"] = True
        ids.append(t.create_task("work", ctx, namespace=NS)["task_id"])
    poison = ids[7]
    for tid in ids:
        task = t.wait_task(tid, timeout=30)
        if tid == poison:
            assert task["status"] == "error", task
            a = [s for s in task["steps"] if s["name"] == "a"][0]
            assert a["status"] == "error" and a["attempts"] == 1, a
            assert a["last_error"]["code"] == "outcome_not_stored", a
            assert "refused by the test" in a["last_error"]["message"], a
        else:
            assert task["status"] == "complete", task
    assert t.log_lines("outcome refused by the database, failing the step"
                       ".*step=a"), t.log_tail(30)
    # The counters follow what was written, not what the worker said: the
    # refused success counted as one (it was counted before the write).
    r = t.get("/metrics")
    text = r.body if isinstance(r.body, str) else r.body.decode()
    labels = '{namespace="refuse",template="work",step="a"}'
    assert "taskerd_steps_completed_total%s 29\n" % labels in text, text
    assert "taskerd_steps_failed_total%s 1\n" % labels in text, text


TWO = """\
name: two
namespace_name: refuse
version: 1.0.0
step_templates:
  - name: a
    handler: noop
    handler_config: { sleep_ms: 1500 }
  - name: b
    handler: noop
    handler_config: { sleep_ms: 1500 }
"""


def test_refused_outcome_of_a_task_that_was_locked_elsewhere(taskerd, pg):
    """A task whose row was locked elsewhere is set aside and tried again
    with all its outcomes; once past the lock, one of them is refused.  The
    search for it goes one record at a time as for any task (the task set
    aside used to be tried whole, refused, every 500 ms for as long as the
    node ran)."""
    from test_database_outage import hold_task_row
    t = taskerd(templates={"two.yaml": TWO}, workers=2,
                config={"database.lock_timeout": "1s"})
    pg.execute(t.db, """
        CREATE FUNCTION refuse_a() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status = 'complete' AND NEW.name = 'a' THEN
                RAISE EXCEPTION 'refused by the test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_a BEFORE UPDATE ON steps
            FOR EACH ROW EXECUTE FUNCTION refuse_a();
    """)
    tid = t.create_task("two", {}, namespace=NS)["task_id"]
    hold_task_row(pg, t, tid, 4).wait(20)
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    steps = {s["name"]: s for s in task["steps"]}
    assert steps["a"]["last_error"]["code"] == "outcome_not_stored", steps
    assert steps["b"]["status"] == "complete", steps
