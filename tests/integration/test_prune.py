"""taskerd_prune(): finished tasks go with every row they own; live ones stay.

No per-task table cascades from tasks (migrations 004 and 006 dropped those
foreign keys for speed), so pruning is one SQL function.  It must delete a
finished task's steps, edges and transitions with it, leave live tasks and
recently finished ones alone, and take at most max_tasks per call.
"""

import time

import harness

FANOUT = """\
name: fanout
namespace_name: it
version: 1.0.0
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
  - name: c
    handler: noop
    depends_on_step: a
"""

# Fails once, then waits an hour for its retry: a live task.
WAITING = """\
name: waiting
namespace_name: it
version: 1.0.0
step_templates:
  - name: x
    handler: noop
    retry_limit: 3
    backoff: { base: 1h, max: 1h, jitter: none }
    handler_config: { fail: retryable }
  - name: y
    handler: noop
    depends_on_step: x
"""

TABLES = ("tasks", "steps", "step_edges", "task_transitions",
          "step_transitions")


def rows_of(pg, db, task_id):
    """How many rows each table holds for a task."""
    q = {"tasks": "select count(*) from tasks where id = %d",
         "steps": "select count(*) from steps where task_id = %d",
         "step_edges": "select count(*) from step_edges e join steps s"
                       " on s.id = e.from_step_id where s.task_id = %d",
         "task_transitions": "select count(*) from task_transitions"
                             " where task_id = %d",
         "step_transitions": "select count(*) from step_transitions"
                             " where task_id = %d"}
    return {t: int(pg.scalar(db, q[t] % task_id)) for t in TABLES}


def test_prune_deletes_finished_tasks_with_their_rows(taskerd, pg):
    t = taskerd(templates={"f.yaml": FANOUT, "w.yaml": WAITING})
    done = []
    for i in range(3):
        tid = t.create_task("fanout", {"i": i}, namespace="it")["task_id"]
        done.append(tid)
    for tid in done:
        assert t.wait_task(tid)["status"] == "complete"
    live = t.create_task("waiting", {}, namespace="it")["task_id"]
    deadline = time.monotonic() + 20
    while t.task(live)["steps"][0]["status"] != "waiting_for_retry":
        assert time.monotonic() < deadline, t.task(live)
        time.sleep(0.05)

    before = {tid: rows_of(pg, t.db, tid) for tid in done + [live]}
    for tid in done:
        assert before[tid]["steps"] == 3 and before[tid]["step_edges"] == 2 \
            and before[tid]["step_transitions"] >= 6 \
            and before[tid]["task_transitions"] >= 2, before[tid]
    totals = harness.row_counts(pg, t.db)

    # Finished, but not before an hour ago: nothing to do.
    assert pg.scalar(t.db, "select taskerd_prune(now() - interval '1 hour')") == "0"
    assert harness.row_counts(pg, t.db) == totals

    # At most max_tasks a call, the oldest first.
    cutoff = "now() + interval '1 minute'"
    assert pg.scalar(t.db, "select taskerd_prune(%s, 2)" % cutoff) == "2"
    assert rows_of(pg, t.db, done[0])["tasks"] == 0
    assert rows_of(pg, t.db, done[2])["tasks"] == 1
    assert pg.scalar(t.db, "select taskerd_prune(%s, 2)" % cutoff) == "1"
    assert pg.scalar(t.db, "select taskerd_prune(%s, 2)" % cutoff) == "0"

    # Every row of the finished tasks is gone, and only those.
    for tid in done:
        assert rows_of(pg, t.db, tid) == dict.fromkeys(TABLES, 0), tid
        assert t.get("/v1/tasks/%d" % tid).status == 404
    after = harness.row_counts(pg, t.db)
    for table in TABLES:
        assert after[table] == totals[table] - sum(
            before[tid][table] for tid in done), (table, after, totals)
    assert rows_of(pg, t.db, live) == before[live]
    assert t.task(live)["status"] == "in_progress"
