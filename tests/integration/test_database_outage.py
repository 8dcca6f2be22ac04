"""The database goes away and comes back.

taskerd must stay alive and say it is not ready (503) while PostgreSQL is
down, answer API calls with a JSON 5xx rather than hang, reconnect when the
server is back, and still stop promptly on SIGTERM while the database is
down.  Uses a cluster of its own, since it stops it.
"""

import os
import signal
import socket
import threading
import time

import pytest

import harness
from test_metrics import scrape, value
from conftest import running_cluster, taskerd_factory

TEMPLATE = """\
name: outage
namespace_name: it
version: 1.0.0
step_templates:
  - name: one
    handler: noop
  - name: two
    handler: noop
    depends_on_step: one
routes:
  create: { path: /outage }
  status: { path: "/outage/status/{task_id}" }
"""


@pytest.fixture
def own_pg():
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def outage_taskerd(own_pg, request):
    with taskerd_factory(own_pg, request) as factory:
        yield factory(templates={"outage.yaml": TEMPLATE})


def answer_within(seconds, what, call, *args, **kwargs):
    try:
        return call(*args, timeout=seconds, **kwargs)
    except (TimeoutError, socket.timeout):
        pytest.fail("%s got no answer within %ds while the database was down"
                    % (what, seconds))


def ready_status(t):
    r = t.get("/health/ready", timeout=5)
    return r.status


def test_database_down_and_back(own_pg, outage_taskerd):
    t = outage_taskerd
    first = t.create_task("outage", {"n": 1}, namespace="it")
    assert t.wait_task(first["task_id"])["status"] == "complete"

    own_pg.pause()
    r = t.get("/health/live", timeout=5)
    assert (r.status, r.body) == (200, {"status": "ok"})
    harness.wait_until(lambda: ready_status(t) == 503, 10,
                       message="/health/ready to answer 503 with the database down")
    r = t.get("/health/ready", timeout=5)
    assert r.status == 503 and isinstance(r.body, dict), r

    # Calls that need the database fail fast and clearly (a client that
    # gave up must not find its task created later).
    r = answer_within(12, "POST /v1/tasks", t.post, "/v1/tasks", json={
        "name": "outage", "namespace": "it", "context": {"n": 2}})
    assert 500 <= r.status < 600, (r.status, r.body)
    harness.assert_json_error(r, r.status)
    r = answer_within(12, "GET /v1/tasks/{id}", t.get, "/v1/tasks/%d" % first["task_id"])
    assert 500 <= r.status < 600, (r.status, r.body)
    harness.assert_json_error(r, r.status)
    # A template's routes answer in their own format, as the seed's
    # clients read it.
    r = answer_within(12, "POST /outage", t.post, "/outage",
                      json={"n": 2})
    assert r.status == 503 and r.body["success"] is False and \
        r.body["code"] == "database_unavailable", (r.status, r.body)
    r = answer_within(12, "GET /outage/status/{id}", t.get,
                      "/outage/status/%d" % first["task_id"])
    assert r.status == 503 and r.body["success"] is False and \
        "database" in r.body["error"], (r.status, r.body)

    own_pg.resume()
    harness.wait_until(lambda: ready_status(t) == 200, 20,
                       message="/health/ready back to 200 after the database returned")
    again = t.create_task("outage", {"n": 3}, namespace="it")
    assert t.wait_task(again["task_id"])["status"] == "complete"
    # The task refused during the outage was not created.
    assert sorted(x["task_id"] for x in t.get("/v1/tasks").body["tasks"]) == \
        sorted([first["task_id"], again["task_id"]])


RUN_ONCE = """\
name: once
namespace_name: it
version: 1.0.0
step_templates:
  - name: only
    handler: noop
    retryable: false
    handler_config: { sleep_ms: 15000 }
"""


def test_a_short_restart_of_the_database_keeps_the_lease(own_pg, request):
    """PostgreSQL restarts (a minor upgrade, a setting), 6 s down, just
    after a renewal of the 10 s lease.  A renewal that failed is tried
    again as soon as a connection is back, and connections are made again
    within a second, so the lease holds and a step that must not run
    twice, running meanwhile, completes on its one attempt.  Renewals
    used to wait for their next turn, a third of a lease, and connections
    up to 5 s: the lease lapsed, the step was stopped and its task ended
    in error."""
    with taskerd_factory(own_pg, request) as factory:
        t = factory(workers=1, templates={"once.yaml": RUN_ONCE})
        tid = t.create_task("once", {}, namespace="it")["task_id"]
        harness.wait_until(
            lambda: t.task(tid)["steps"][0]["status"] == "in_progress", 10,
            message="the step running")
        last = t.pg.scalar(t.db, "SELECT heartbeat_at FROM nodes")
        harness.wait_until(
            lambda: t.pg.scalar(t.db, "SELECT heartbeat_at FROM nodes") !=
            last, 10, interval=0.02, message="a renewal")
        own_pg.pause()
        time.sleep(6)           # the server's downtime, the point here
        own_pg.resume()
        done = t.wait_task(tid, timeout=40)
        assert done["status"] == "complete", done
        assert done["steps"][0]["attempts"] == 1, done["steps"]
        assert not t.log_lines("lease lapsed"), t.log_tail(30)
        assert t.log_lines("database connection lost"), t.log_tail(30)


def test_sigterm_while_database_is_down(own_pg, outage_taskerd):
    t = outage_taskerd
    own_pg.pause()
    harness.wait_until(lambda: ready_status(t) == 503, 10,
                       message="/health/ready to notice the database is down")
    code = t.stop(timeout=10)
    assert code == 0, "taskerd exit %s after SIGTERM with the database down" % code


def test_watchdog_is_fed_while_the_database_is_down(own_pg, request,
                                                  notify_socket, monkeypatch):
    """taskerd reconnects by itself, so an outage is no reason for systemd
    to kill it: that would stop running steps and drop the outcomes that
    wait for the database.  STATUS= says the database is away."""
    sock, path = notify_socket
    harness.notify_env(monkeypatch, path, watchdog_usec=600000)
    with taskerd_factory(own_pg, request) as factory:
        t = factory(templates={"outage.yaml": TEMPLATE})
        own_pg.pause()
        try:
            harness.wait_until(lambda: ready_status(t) == 503, 10, message=
                               "/health/ready to notice the database is down")
            harness.notify_messages(sock, 0.5)
            texts = [m for _, m in harness.notify_messages(sock, 2.0)]
            # Every half interval (300 ms): several within 2 s.
            assert texts.count("WATCHDOG=1") >= 4, texts
            assert any(m.startswith("STATUS=") and
                       m.endswith("database unavailable") for m in texts), \
                texts
        finally:
            own_pg.resume()


def test_log_stays_logfmt_through_an_outage(own_pg, outage_taskerd):
    """One event per line, each a valid logfmt line, even when libpq's
    messages span several lines."""
    t = outage_taskerd
    own_pg.pause()
    harness.wait_until(lambda: ready_status(t) == 503, 10,
                       message="/health/ready to notice the database is down")
    own_pg.resume()
    harness.wait_until(lambda: ready_status(t) == 200, 20,
                       message="/health/ready back to 200 after the database returned")
    harness.assert_logfmt(t.log())


def test_database_that_does_not_answer(own_pg, request):
    """A database that stops answering - a lock held elsewhere, a wedged
    server, a network that swallows packets - gets a 503 within seconds,
    never a request that hangs.  database.statement_timeout bounds each
    statement at the server; a connection silent even longer is dropped
    and made anew."""
    with taskerd_factory(own_pg, request) as factory:
        t = factory(templates={"outage.yaml": TEMPLATE},
                    config={"database.statement_timeout": "1s"})
        stalled_database(own_pg, t)


def stalled_database(own_pg, t):
    first = t.create_task("outage", {"n": 1}, namespace="it")
    assert t.wait_task(first["task_id"])["status"] == "complete"

    # A lock held by someone else: the statement's wait for it ends at the
    # server (lock_timeout), and the answer says a lock held it up.
    holder = own_pg.psql_background(
        t.db, "BEGIN; LOCK TABLE tasks; SELECT pg_sleep(4); COMMIT;")
    try:
        harness.wait_until(lambda: own_pg.scalar(
            t.db, "select count(*) from pg_locks where relation = "
            "'tasks'::regclass and mode = 'AccessExclusiveLock' and granted")
            == "1", 5, message="the lock taken")
        started = time.monotonic()
        r = t.post("/v1/tasks", json={"name": "outage", "namespace": "it",
                                      "context": {"n": 2}}, timeout=10)
        harness.assert_json_error(r, 503, "locked")
        assert r.headers.get("Retry-After") == "1"
        assert time.monotonic() - started < 3.5
    finally:
        holder.wait(10)
    second = t.create_task("outage", {"n": 3}, namespace="it")
    assert t.wait_task(second["task_id"])["status"] == "complete"

    # A server that does not answer at all: its backends are stopped.
    pids = [int(p) for p in own_pg.scalar(
        t.db, "select string_agg(pid::text, ',') from pg_stat_activity "
        "where application_name = '%s'" % t.config["node_id"]).split(",")]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = t.get("/v1/tasks", timeout=20)
        assert r.status == 503, (r.status, r.body)
        assert time.monotonic() - started < 12
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert t.log_lines("no answer from the database in"), t.log_tail(30)
    third = t.create_task("outage", {"n": 4}, namespace="it")
    assert t.wait_task(third["task_id"], timeout=20)["status"] == "complete"


def test_requests_still_waiting_at_the_drain_deadline_are_answered(
        own_pg, request):
    """SIGTERM while the database does not answer: when the drain deadline
    (10 s) passes, each request still waiting on the database gets its JSON
    503 before taskerd exits, rather than a connection closed without a
    word.  A creation's is outcome_unknown: its statement is still with the
    server and may yet commit.  (The statements wait on a lock, held past
    the deadline: database.lock_timeout is raised for that.)"""
    with taskerd_factory(own_pg, request) as factory:
        t = factory(templates={"outage.yaml": TEMPLATE},
                    config={"database.lock_timeout": "60s"})
        drain_deadline_answers(own_pg, t)


def drain_deadline_answers(own_pg, t):
    first = t.create_task("outage", {"n": 1}, namespace="it")
    assert t.wait_task(first["task_id"])["status"] == "complete"
    holder = own_pg.psql_background(
        t.db, "BEGIN; LOCK TABLE tasks; SELECT pg_sleep(25); COMMIT;")
    answers = {}

    def ask(name, method, path, body=None):
        try:
            answers[name] = t.request(method, path, json=body, timeout=30)
        except Exception as e:      # what the client saw instead
            answers[name] = e

    calls = [threading.Thread(target=ask, args=(
                 "create", "POST", "/v1/tasks",
                 {"name": "outage", "namespace": "it", "context": {"n": 2}})),
             threading.Thread(target=ask, args=(
                 "read", "GET", "/v1/tasks/%s" % first["task_id"]))]
    try:
        harness.wait_until(lambda: own_pg.scalar(
            t.db, "select count(*) from pg_locks where relation = "
            "'tasks'::regclass and mode = 'AccessExclusiveLock' and granted")
            == "1", 5, message="the lock taken")
        for c in calls:
            c.start()
        # Both statements at the server, blocked (other statements of
        # taskerd's may wait on the lock too).
        harness.wait_until(lambda: own_pg.scalar(
            t.db, "select count(*) from pg_stat_activity where "
            "application_name = '%s' and wait_event_type = 'Lock' and "
            "(position('INSERT INTO tasks' in query) > 0 or "
            "position('taskerd_task_json' in query) > 0)"
            % t.config["node_id"]) == "2", 10,
            message="the creation and the read waiting on the lock")
        started = time.monotonic()
        code = t.stop(timeout=20)
        for c in calls:
            c.join(5)
        assert code == 0, "taskerd exit %s after SIGTERM" % code
        assert 9 < time.monotonic() - started < 14, \
            "exit %.1fs after SIGTERM" % (time.monotonic() - started)
    finally:
        holder.kill()
        holder.wait(10)
    for name, want in (("create", "outcome_unknown"),
                       ("read", "database_unavailable")):
        r = answers.get(name)
        assert isinstance(r, harness.Response), \
            "%s: no answer, the client saw %r" % (name, r)
        harness.assert_json_error(r, 503, want)
    assert t.log_lines(r'msg="drain deadline passed'), t.log_tail(30)


SLOW = """\
name: slow
namespace_name: it
version: 1.0.0
step_templates:
  - name: call
    handler: http
    default_retry_limit: 1
    handler_config: { method: POST, url: "%s/slow" }
"""


def test_outcome_waits_out_a_read_only_database(own_pg, service, request):
    """The database turns read-only (a failover under way) while a step
    runs: its outcome is written once writes come back.  It used to be
    taken for a record the database refuses, dropped, and the step run
    again as a lost claim - or, on its last attempt, failed."""
    service.route("POST", "/slow", status=200, body={"ok": True}, delay=1.5)
    with taskerd_factory(own_pg, request) as factory:
        t = factory(templates={"slow.yaml": SLOW % service.url}, workers=1)
        tid = t.create_task("slow", {}, namespace="it")["task_id"]
        service.wait_requests("/slow", 1, timeout=10)
        own_pg.psql(t.db, "ALTER SYSTEM SET default_transaction_read_only "
                    "= on")
        own_pg.psql(t.db, "SELECT pg_reload_conf()")
        try:
            # The service answers; the outcome meets the read-only
            # database, again and again for a second and a half.
            (call,) = service.requests_for("/slow")
            harness.wait_until(lambda: call.t_end is not None, 10,
                               message="the service's answer")
            time.sleep(1.5)
            assert t.log_lines("applying outcomes failed.*read-only"), \
                t.log_tail(20)
        finally:
            own_pg.psql(t.db, "ALTER SYSTEM RESET "
                        "default_transaction_read_only")
            own_pg.psql(t.db, "SELECT pg_reload_conf()")
        task = t.wait_task(tid, timeout=20)
        assert task["status"] == "complete", task
        assert task["steps"][0]["attempts"] == 1, task["steps"]
        assert len(service.requests_for("/slow")) == 1
        assert not t.log_lines("outcome refused"), t.log_tail(20)


TWO_SPEEDS = """\
name: call
namespace_name: it
version: 1.0.0
step_templates:
  - name: call
    handler: http
    handler_config: { method: POST, url: "%s/{{context.path}}" }
"""


def hold_task_row(pg, t, task_id, seconds):
    """An open transaction holding a task's row for some seconds (an
    operator's SELECT ... FOR UPDATE in psql), returned once the task's
    outcome has waited on it in vain (database.lock_timeout)."""
    holder = pg.psql_background(
        t.db, "BEGIN; SELECT id FROM tasks WHERE id = %d FOR UPDATE; "
        "SELECT pg_sleep(%d); COMMIT;" % (task_id, seconds))
    try:
        harness.wait_until(lambda: t.log_lines(
            "applying outcomes failed.*lock timeout"), seconds,
            message="the task's outcome waiting for its row")
    except BaseException:
        holder.kill()
        holder.wait(10)
        raise
    return holder


@pytest.mark.parametrize("config", [{}, {
    "database.statement_timeout": "1s"}], ids=["default", "short-statements"])
def test_a_task_locked_elsewhere_holds_back_only_its_own_outcome(
        own_pg, service, request, config):
    """An open transaction holds a task's row (an operator's SELECT ... FOR
    UPDATE in psql): that task's outcome waits until it ends, but the
    outcomes of other tasks are written meanwhile.  They used to wait in
    the same batch, retried whole, for as long as the lock was held - and
    the queries queued behind it held back the node's heartbeat.  Once
    found, the locked task is set aside: its outcome is tried again alone
    every second, waiting on the lock only briefly, and the others no
    longer wait database.lock_timeout (5 s here) each time the whole batch
    meets the lock again.  With a statement timeout shorter than the lock
    timeout, the wait ended as a statement timeout, which held back every
    task's outcomes: waits on a lock are cut to half of it then."""
    service.route("POST", "/slow", status=200, body={"ok": 1}, delay=1.0)
    service.route("POST", "/quick", status=200, body={"ok": 2})
    with taskerd_factory(own_pg, request) as factory:
        t = factory(templates={"call.yaml": TWO_SPEEDS % service.url},
                    config=config)
        a = t.create_task("call", {"path": "slow"}, namespace="it")["task_id"]
        service.wait_requests("/slow", 1, timeout=10)
        holder = hold_task_row(own_pg, t, a, 14)
        try:
            # (Logged just after the failure hold_task_row waited for.)
            harness.wait_until(lambda: t.log_lines(
                "a task is locked elsewhere; its outcomes wait.*task_id=%d"
                % a), 5, message="the locked task set aside")
            for _ in range(3):
                started = time.monotonic()
                b = t.create_task("call", {"path": "quick"},
                                  namespace="it")["task_id"]
                done = t.wait_task(b, timeout=20)
                took = time.monotonic() - started
                assert done["status"] == "complete", done
                assert took < 2.5, "task b took %.1f s" % took
            assert t.task(a)["status"] in ("pending", "in_progress")
            # What the API cannot show yet, the metrics count: a's
            # outcome, known and unwritten.
            assert value(scrape(t), "taskerd_scheduler_outcomes_unwritten"
                         ) == 1
            assert holder.poll() is None, "the lock was let go too soon"
        finally:
            holder.wait(20)
        done = t.wait_task(a, timeout=10)
        assert done["status"] == "complete", done
        assert value(scrape(t), "taskerd_scheduler_outcomes_unwritten") == 0
        assert done["steps"][0]["attempts"] == 1, done["steps"]
        assert t.log_lines("outcomes of a task that was locked elsewhere "
                           "applied.*task_id=%d" % a)
        # The tries of the task set aside are not logged one by one.
        assert len(t.log_lines("applying outcomes failed")) <= 2, \
            t.log_lines("applying outcomes failed")


def test_heartbeat_goes_through_while_a_task_is_locked_elsewhere(
        taskerd, service, pg):
    """With a task's row locked elsewhere for 15 s, its outcome and a
    cancel of it wait on the lock, on both of the node's connections.
    Such waits end after database.lock_timeout and the heartbeat goes
    first in the queue, so the node keeps its lease: a step running
    meanwhile is not stopped (it used to be, the lease lapsed, and the
    step ran again)."""
    service.route("POST", "/slow", status=200, body={"ok": 1}, delay=1.0)
    service.route("POST", "/long", status=200, body={"ok": 3}, delay=18)
    t = taskerd(templates={"call.yaml": TWO_SPEEDS % service.url},
                workers=2, config={"database.pool": 2})
    long_ = t.create_task("call", {"path": "long"}, namespace="it")["task_id"]
    service.wait_requests("/long", 1, timeout=10)
    a = t.create_task("call", {"path": "slow"}, namespace="it")["task_id"]
    service.wait_requests("/slow", 1, timeout=10)
    holder = hold_task_row(pg, t, a, 15)
    try:
        r = t.delete("/v1/tasks/%d" % a, timeout=30)
        # (Said as a lock held elsewhere, not as the database away.)
        err = harness.assert_json_error(r, 503, "locked")
        assert "locked by another session" in err["message"], err
        assert r.headers.get("Retry-After") == "1"
        assert t.log_lines(r'waited in vain for a lock .* '
                           r'uri=/v1/tasks/%d' % a), t.log_tail(20)
    finally:
        holder.wait(20)
    done = t.wait_task(long_, timeout=30)
    assert done["status"] == "complete", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert len(service.requests_for("/long")) == 1
    assert not t.log_lines("lease lapsed"), t.log_tail(30)
    assert t.wait_task(a, timeout=20)["status"] == "complete"
