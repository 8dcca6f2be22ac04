"""Steps that must not run twice (retryable: false) start only once their
'in_progress' is written.  While that write waits (here on a lock held on
the step's row), no worker waits with it, and a cancel heard meanwhile
keeps the step from starting.  (A crash in that window: see
test_orphan_claims.py.)"""

import time

import harness

NS = "once"

TEMPLATES = {
    "busy.yaml": """\
name: busy
namespace_name: once
version: 1.0.0
step_templates:
  - name: work
    handler: noop
    handler_config: { sleep_ms: 1500 }
""",
    "charge.yaml": """\
name: charge
namespace_name: once
version: 1.0.0
step_templates:
  - name: charge
    handler: http
    default_retryable: false
    handler_config: { method: POST, url: "@SVC@/charge" }
""",
    "quick.yaml": """\
name: quick
namespace_name: once
version: 1.0.0
step_templates:
  - name: only
    handler: noop
""",
}


def held_mark(taskerd, service, pg):
    """One worker, busy; a charge task queued behind it; its step's row
    locked for 12 s, so that its mark waits: the batch it is in fails at
    the lock timeout (5 s), and from then on only the charge's record is
    held back.  Returns (t, charge task id, the locking psql)."""
    service.route("POST", "/charge", status=200, body={"charged": True})
    templates = {k: v.replace("@SVC@", service.url)
                 for k, v in TEMPLATES.items()}
    t = taskerd(templates=templates, workers=1)
    busy = t.create_task("busy", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: t.task(busy)["steps"][0]["status"] ==
                       "in_progress", 10, message="the worker busy")
    charge = t.create_task("charge", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: t.task(charge)["steps"][0]["status"] ==
                       "enqueued", 10, message="the charge queued")
    locker = pg.psql_background(t.db, (
        "BEGIN; SELECT 1 FROM steps WHERE task_id = %d FOR UPDATE; "
        "SELECT pg_sleep(12); COMMIT;") % charge)
    harness.wait_until(lambda: int(pg.scalar(t.db, (
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
        "ON a.pid = l.pid WHERE l.locktype = 'transactionid' AND "
        "a.query LIKE '%%pg_sleep(12)%%' AND l.granted"))) >= 1, 5,
        message="the lock taken")
    assert t.wait_task(busy, timeout=15)["status"] == "complete"
    assert locker.poll() is None
    return t, charge, locker


def test_no_worker_waits_for_a_held_mark(taskerd, service, pg):
    """The worker the charge would take stays free for other work while
    its mark waits.  It waited with it: a task created meanwhile waited
    for the lock to end."""
    t, charge, locker = held_mark(taskerd, service, pg)
    quick = t.create_task("quick", {}, namespace=NS)["task_id"]
    # (Not at once: the batch that waits on the lock keeps room for the
    # children it may claim, until the lock timeout splits it.)
    assert t.wait_task(quick, timeout=15)["status"] == "complete"
    assert locker.poll() is None, "the lock ended before the quick task"
    assert locker.wait(timeout=15) == 0
    done = t.wait_task(charge, timeout=20)
    assert done["status"] == "complete", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert len(service.requests_for("/charge")) == 1


def test_a_cancel_heard_while_the_mark_waits_keeps_the_step_from_starting(
        taskerd, service, pg):
    """The task is cancelled while its step's mark waits: once the mark
    commits, the step does not start, and ends cancelled.  It ran, inside
    a cancelled task."""
    t, charge, locker = held_mark(taskerd, service, pg)
    r = t.delete("/v1/tasks/%d" % charge)
    assert r.status == 200 and r.body["status"] == "cancelled", r.body
    assert locker.wait(timeout=15) == 0
    harness.wait_until(lambda: t.task(charge)["steps"][0]["status"] ==
                       "cancelled", 15, message="the step cancelled")
    time.sleep(0.5)
    assert service.requests_for("/charge") == []
    done = t.task(charge)
    assert done["status"] == "cancelled", done
    step = done["steps"][0]
    assert step["status"] == "cancelled", step
