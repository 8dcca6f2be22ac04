"""Steps that must not run twice (retryable: false) start only once their
'in_progress' is written, so that a crash never leaves one that ran
looking unstarted; and only as many are written as workers are idle, so
that a crash does not end the attempts of queued ones that never ran.
While that write waits (here on a lock held on the step's row), no worker
and no place of its service waits with it, and a cancel heard meanwhile
keeps the step from starting."""

import threading
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
    handler: http
    timeout: 30s
    handler_config: { method: POST, url: "@SVC@/busy" }
""",
    "charge.yaml": """\
name: charge
namespace_name: once
version: 1.0.0
step_templates:
  - name: charge
    handler: http
    dependent_system: svc
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


def held_mark(taskerd, service, pg, extra=None, config=None):
    """One worker, busy; a charge task queued behind it; its step's row
    locked for 12 s, so that its mark waits: the batch it is in fails at
    the lock timeout (5 s), and from then on only the charge's record is
    held back.  Returns (t, charge task id, the locking psql)."""
    service.route("POST", "/charge", status=200, body={"charged": True})
    # The busy step's call lasts until the charge's row is locked (20 s
    # at most): the charge's mark must meet the lock.
    locked = threading.Event()
    service.route("POST", "/busy", lambda req: (locked.wait(20),
                                               (200, {"ok": True}))[1])
    templates = {k: v.replace("@SVC@", service.url)
                 for k, v in dict(TEMPLATES, **(extra or {})).items()}
    try:
        t = taskerd(templates=templates, workers=1, config=config)
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
    finally:
        locked.set()
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
    # Once the batch the mark waited in has failed: until then the cancel
    # waits for the same lock with the same timeout, and which of the two
    # gives up first is a coin toss (the cancel's 503 'locked' is right
    # then, but not what this test is about).
    harness.wait_until(lambda: t.log_lines(
        "a task is locked elsewhere; its outcomes wait.*task_id=%d\\b"
        % charge), 10, message="the held mark set aside")
    r = t.delete("/v1/tasks/%d" % charge)
    assert r.status == 200 and r.body["status"] == "cancelled", r.body
    assert locker.poll() is None, "the lock ended before the cancel"
    assert locker.wait(timeout=15) == 0
    harness.wait_until(lambda: t.task(charge)["steps"][0]["status"] ==
                       "cancelled", 15, message="the step cancelled")
    time.sleep(0.5)
    assert service.requests_for("/charge") == []
    done = t.task(charge)
    assert done["status"] == "cancelled", done
    step = done["steps"][0]
    assert step["status"] == "cancelled", step


CHARGE_ONCE = """\
name: charge_once
namespace_name: once
version: 1.0.0
step_templates:
  - name: charge
    handler: http
    default_retryable: false
    handler_config: { method: POST, url: "@SVC@/charge" }
"""


def killed_at_call(taskerd, service, template, create, at, delay=0.0,
                   workers=1, config=None):
    """A node on template whose service call number `at` kills it, after
    delay seconds (the other calls take 0.3 s); the tasks create(t) makes;
    started again once killed.  Returns (t, the calls, create's ids)."""
    node, calls = {}, []

    def charge(req):
        calls.append(req)
        time.sleep(delay if len(calls) == at else 0.3)
        if len(calls) == at:
            node["t"].kill()
        return 200, {"charged": True}

    service.route("POST", "/charge", charge)
    t = taskerd(templates={"t.yaml": template.replace("@SVC@", service.url)},
                workers=workers,
                config=dict({"scheduler": {"lease": "2s"}}, **(config or {})))
    node["t"] = t
    ids = create(t)
    harness.wait_until(lambda: len(calls) >= at and not t.running, 15,
                       message="the node killed at call %d" % at)
    t.start()
    return t, calls, ids


def test_a_step_that_must_not_run_twice_is_not_run_after_a_crash(taskerd,
                                                                 service):
    """The node dies the moment a step that must not run twice calls its
    service.  Restarted, it does not call again: the step ends in error
    (node_restarted).  It called twice: the step had started before its
    'in_progress' was written, so its claim read 'enqueued', which the
    restart took for never run and handed back."""
    t, calls, (tid,) = killed_at_call(
        taskerd, service, CHARGE_ONCE, lambda t: [t.create_task(
            "charge_once", {}, namespace=NS)["task_id"]], at=1)
    done = t.wait_task(tid, timeout=20)
    assert done["status"] == "error", done
    step = done["steps"][0]
    assert step["last_error"]["code"] == "node_restarted", step
    assert len(calls) == 1, "the step ran %d times" % len(calls)


def test_a_crash_ends_only_the_attempts_that_started(taskerd, service):
    """Eight charges queue behind one worker; the node dies during the
    second call.  After the restart only that attempt ends in error
    (node_restarted): the six waiting ones run.  All eight were written
    'in_progress' at once, and all but the first ended in error."""
    t, calls, ids = killed_at_call(
        taskerd, service, CHARGE_ONCE, lambda t: [t.create_task(
            "charge_once", {"n": i}, namespace=NS)["task_id"]
            for i in range(8)], at=2)
    done = [t.wait_task(i, timeout=30) for i in ids]
    errors = [d for d in done if d["status"] == "error"]
    assert len(errors) == 1, [(d["task_id"], d["status"]) for d in done]
    assert errors[0]["steps"][0]["last_error"]["code"] == "node_restarted"
    assert len(calls) == 8, len(calls)


def test_a_held_mark_keeps_no_place_of_its_service(taskerd, service, pg):
    """The charge's service allows one call at a time; while its mark
    waits on the lock, another step of the service runs.  It waited for
    the lock: the place was taken when the mark was written."""
    service.route("GET", "/ping", status=200, body={"pong": True})
    t, charge, locker = held_mark(taskerd, service, pg, extra={
        "ping.yaml": """\
name: ping
namespace_name: once
version: 1.0.0
step_templates:
  - name: ping
    handler: http
    dependent_system: svc
    handler_config: { method: GET, url: "@SVC@/ping" }
"""}, config={"services": {"svc": {"concurrency": 1}}})
    ping = t.create_task("ping", {}, namespace=NS)["task_id"]
    assert t.wait_task(ping, timeout=15)["status"] == "complete"
    assert locker.poll() is None, "the lock ended before the ping"
    assert locker.wait(timeout=15) == 0
    assert t.wait_task(charge, timeout=20)["status"] == "complete"


FANOUT = """\
name: fanout
namespace_name: once
version: 1.0.0
step_templates:
  - name: root
    handler: noop
""" + "".join("""\
  - name: c%d
    handler: http
    dependent_system: svc
    depends_on_step: root
    default_retryable: false
    handler_config: { method: POST, url: "@SVC@/charge" }
""" % i for i in (1, 2, 3))


def test_a_crash_ends_only_the_attempt_its_service_allowed(taskerd, service):
    """Three charges of one task are ready at once, with workers to spare,
    but their service takes one call at a time; the node dies during the
    first call.  After the restart only that attempt ends in error: the
    service's limit kept the other two unmarked.  All three were written
    'in_progress', and all three ended in error."""
    t, calls, (tid,) = killed_at_call(
        taskerd, service, FANOUT, lambda t: [t.create_task(
            "fanout", {}, namespace=NS)["task_id"]], at=1, delay=0.5,
        workers=4, config={"services": {"svc": {"concurrency": 1}}})
    done = t.wait_task(tid, timeout=30)
    steps = harness.steps_by_name(done)
    failed = [n for n in ("c1", "c2", "c3") if steps[n]["status"] == "error"]
    assert len(failed) == 1, steps
    assert steps[failed[0]]["last_error"]["code"] == "node_restarted"
    assert len(calls) == 3, len(calls)


ONCE_BESIDE_SLOW = """\
name: beside
namespace_name: once
version: 1.0.0
step_templates:
  - name: root
    handler: noop
  - name: once
    handler: noop
    depends_on_step: root
    default_retryable: false
  - name: slow
    handler: noop
    depends_on_step: root
    handler_config: { sleep_ms: 3000 }
"""


def test_a_marked_step_keeps_its_worker(taskerd):
    """Two children are claimed together for one idle worker: one that
    must not run twice, marked first, and a retryable one.  The marked
    one runs first; the node then dies while the other runs, and the
    marked one is complete.  The retryable one took the worker while the
    mark was being written, and the marked one, 'in_progress' but never
    run, ended in error (node_restarted) at the restart."""
    t = taskerd(templates={"beside.yaml": ONCE_BESIDE_SLOW}, workers=1)
    tid = t.create_task("beside", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: harness.steps_by_name(t.task(tid))["slow"][
        "status"] == "in_progress", 10, message="the slow step running")
    time.sleep(0.5)     # the other step's outcome, had it run, is written
    t.kill()
    t.start()
    done = t.wait_task(tid, timeout=30)
    once = harness.steps_by_name(done)["once"]
    assert done["status"] == "complete", done
    assert once["status"] == "complete" and once["attempts"] == 1, once

