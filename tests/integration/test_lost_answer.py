"""A creation whose answer the database connection lost.

The statement that stores a batch of tasks reached the server, and the
connection broke before its answer came: the task may or may not exist.
Answering "try again" would make a client that does store the task twice
(under always_unique, the default).  taskerd looks its request ids up
instead: a stored task is answered 201 and runs at once (its first step's
claim is taken up again), a task that was not stored is answered "try
again", and when the database does not come back to say which, the answer
says that the outcome is unknown.

A proxy between taskerd and PostgreSQL (pgproxy.py) loses the answer to
the one statement that carries a marker from the task's context.
"""

import threading
import time

import pytest

import harness
from pgproxy import PgProxy

NS = "lost"
TEMPLATE = """\
name: order
namespace_name: lost
version: 1.0.0
step_templates:
  - name: reserve
    handler: noop
  - name: ship
    handler: noop
    depends_on_step: reserve
"""


@pytest.fixture
def proxy(pg):
    p = PgProxy(pg)
    yield p
    p.close()


@pytest.fixture
def node(taskerd, pg, proxy):
    db = pg.createdb()
    return taskerd(templates={"order.yaml": TEMPLATE}, db=db,
                   config={"database.dsn": proxy.dsn(db)})


def create(t, marker, timeout=30):
    return t.request("POST", "/v1/tasks", json={
        "name": "order", "namespace": NS,
        "context": {"order": marker}}, timeout=timeout)


def stored(t, marker):
    return int(t.pg.scalar(t.db, "SELECT count(*) FROM tasks WHERE "
                           "context->>'order' = '%s'" % marker))


def test_stored_task_is_answered_and_runs(node, proxy):
    t = node
    proxy.lose_answer_to(b"order-stored")
    r = create(t, "order-stored")
    assert proxy.lost.is_set(), "the proxy never saw the statement"
    assert r.status == 201, (r.status, r.body)
    assert r.body["context"] == {"order": "order-stored"}
    assert [s["name"] for s in r.body["steps"]] == ["reserve", "ship"]
    assert stored(t, "order-stored") == 1
    assert t.log_lines("task batch answer lost"), t.log_tail(40)
    # Its first step was claimed in the lost batch: taken up again, it
    # runs now, not after the orphan sweep's grace.
    done = t.wait_task(r.body["task_id"], timeout=10)
    assert done["status"] == "complete", done
    # And the node goes on creating.
    t.create_task("order", {"order": "next"}, namespace=NS)


def test_task_not_stored_is_answered_try_again(node, proxy):
    t = node
    proxy.lose_answer_to(b"order-unsent", statement=True)
    r = create(t, "order-unsent")
    assert proxy.lost.is_set()
    assert r.status == 503, (r.status, r.body)
    assert r.body["error"]["code"] == "database_unavailable", r.body
    assert "nothing was created" in r.body["error"]["message"]
    assert r.headers.get("Retry-After") == "1"
    assert stored(t, "order-unsent") == 0
    # The client's retry is the only task.
    t.create_task("order", {"order": "order-unsent"}, namespace=NS)
    assert stored(t, "order-unsent") == 1


def test_lookup_waits_for_the_database(node, proxy):
    t = node
    # Every connection breaks with the answer, and none can be made for
    # two seconds: the lookup is tried again until one can.
    proxy.lose_answer_to(b"order-wait", then_down=True)
    timer = threading.Timer(2.0, proxy.up)
    timer.start()
    t0 = time.monotonic()
    try:
        r = create(t, "order-wait")
    finally:
        timer.cancel()
        proxy.up()
    assert proxy.lost.is_set()
    assert r.status == 201, (r.status, r.body)
    assert time.monotonic() - t0 >= 2.0
    assert proxy.refused > 0
    assert stored(t, "order-wait") == 1
    assert t.wait_task(r.body["task_id"])["status"] == "complete"


def test_database_that_stays_away_leaves_the_outcome_unknown(node, proxy):
    t = node
    proxy.lose_answer_to(b"order-unknown", then_down=True)
    try:
        r = create(t, "order-unknown", timeout=40)
    finally:
        proxy.up()
    assert r.status == 503, (r.status, r.body)
    assert r.body["error"]["code"] == "outcome_unknown", r.body
    assert "look for it" in r.body["error"]["message"]
    assert t.log_lines("cannot tell whether a task batch was stored")
    # It was stored: the database has it, as the answer warned it might.
    assert stored(t, "order-unknown") == 1


def test_lookup_ends_the_lost_statement_first(node, proxy):
    """The connection breaks on taskerd's side while the server is still
    on the batch (a lock held elsewhere delays it): left alone, the server
    would go on and commit after a lookup had found nothing.  The lookup
    first ends that server process and waits for it, so its answer holds:
    nothing was created, and nothing is created later."""
    t = node
    t.pg.psql_background(t.db, "BEGIN; LOCK TABLE task_transitions IN "
                         "EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT;")
    harness.wait_until(lambda: int(t.pg.scalar(t.db, """
        SELECT count(*) FROM pg_locks WHERE granted AND mode = 'ExclusiveLock'
          AND relation = 'task_transitions'::regclass""")) == 1, 10,
        message="the lock held")
    proxy.lose_answer_to(b"order-slow", cut=True)
    r = create(t, "order-slow")
    assert proxy.lost.is_set()
    assert r.status == 503, (r.status, r.body)
    assert "nothing was created" in r.body["error"]["message"], r.body
    # The lock is gone and the batch with it.
    harness.wait_until(lambda: int(t.pg.scalar(t.db, """
        SELECT count(*) FROM pg_locks
        WHERE relation = 'task_transitions'::regclass""")) == 0, 10,
        message="the lock released")
    assert stored(t, "order-slow") == 0
    t.create_task("order", {"order": "order-slow"}, namespace=NS)
    assert stored(t, "order-slow") == 1


BUSY = """\
name: busy
namespace_name: lost
version: 1.0.0
step_templates:
  - name: b0
    handler: noop
    handler_config: { sleep_ms: 1000 }
  - name: b1
    handler: noop
    handler_config: { sleep_ms: 1000 }
"""

FANOUT = """\
name: fanout
namespace_name: lost
version: 1.0.0
step_templates:
  - name: r0
    handler: noop
    handler_config: { sleep_ms: 3000 }
  - name: r1
    handler: noop
    handler_config: { sleep_ms: 3000 }
  - name: r2
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""


def test_steps_claimed_meanwhile_run_once(taskerd, pg, proxy):
    """While older steps fill the only worker and its prefetch, a new
    batch claims none of its first steps.  Its answer is held: meanwhile
    the general claim takes them one by one as room frees up, and one is
    claimed and waiting for the worker when the answer is lost.  The
    lookup takes up the batch's own claims only, so no step runs twice."""
    db = pg.createdb()
    t = taskerd(templates={"busy.yaml": BUSY, "fanout.yaml": FANOUT}, db=db,
                workers=1, config={"database.dsn": proxy.dsn(db),
                                   "scheduler.prefetch": 2})
    busy = t.create_task("busy", {}, namespace=NS)["task_id"]
    proxy.lose_answer_to(b"fan-held", hold=7)
    r = t.request("POST", "/v1/tasks", json={
        "name": "fanout", "namespace": NS,
        "context": {"order": "fan-held"}}, timeout=30)
    assert proxy.lost.is_set()
    assert r.status == 201, (r.status, r.body)
    tid = r.body["task_id"]
    assert t.wait_task(busy, timeout=20)["status"] == "complete"
    done = t.wait_task(tid, timeout=30)
    assert done["status"] == "complete", done
    for name in ("r0", "r1", "r2"):
        runs = t.log_lines(r'step dispatched" task_id=%d step=%s attempt=1 '
                           % (tid, name))
        assert len(runs) == 1, (name, runs)
        s = [x for x in done["steps"] if x["name"] == name][0]
        assert s["attempts"] == 1, s


MARKED = """\
name: marked
namespace_name: lost
version: 1.0.0
step_templates:
  - name: mark
    handler: noop
    handler_config: { results: { note: outcome-marker } }
"""


def test_an_outcome_whose_answer_was_lost_is_counted_once(taskerd, pg,
                                                          proxy):
    """The batch that writes a step's outcome commits and its answer is
    lost: sent again, the outcome reads as stale (the first batch cleared
    its token), but its transition shows it written.  It counts as the
    completion it was, once; it counted as none (the counters follow
    what was written)."""
    db = pg.createdb()
    t = taskerd(templates={"marked.yaml": MARKED}, db=db,
                config={"database.dsn": proxy.dsn(db)})
    proxy.lose_answer_to(b"outcome-marker")
    tid = t.create_task("marked", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid, timeout=20)
    assert proxy.lost.is_set(), "the proxy never saw the outcome"
    assert done["status"] == "complete", done
    # (Sent again after the pause that follows a failed batch.)
    harness.wait_until(lambda: t.log_lines(
        "outcome found written by a batch whose answer was lost"), 10,
        message="the outcome sent again")
    assert not t.log_lines("stale outcome discarded"), t.log_tail(30)
    r = t.get("/metrics")
    text = r.body if isinstance(r.body, str) else r.body.decode()
    assert 'taskerd_steps_completed_total{namespace="lost",' \
        'template="marked",step="mark"} 1\n' in text, text


def test_a_lost_answer_counts_what_was_written(taskerd, pg, proxy):
    """As above, for a failure written as the cancel of its task wanted:
    found written, it counts by what was written (cancelled: no retry),
    not by what the node had sent (a failure to retry)."""
    db = pg.createdb()
    t = taskerd(templates={"doomed.yaml": """\
name: doomed
namespace_name: lost
version: 1.0.0
step_templates:
  - name: fails
    handler: noop
    handler_config: { sleep_ms: 1500, fail: retryable }
"""}, db=db, config={"database.dsn": proxy.dsn(db)})
    tid = t.create_task("doomed", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: t.task(tid)["steps"][0]["status"] ==
                       "in_progress", 10, message="the step running")
    proxy.lose_answer_to(b"noop asked to fail")
    assert t.request("DELETE", "/v1/tasks/%d" % tid).status == 200
    harness.wait_until(lambda: t.log_lines(
        "outcome found written by a batch whose answer was lost"), 15,
        message="the outcome sent again")
    assert t.task(tid)["steps"][0]["status"] == "cancelled"
    r = t.get("/metrics")
    text = r.body if isinstance(r.body, str) else r.body.decode()
    assert "taskerd_steps_retried_total{" not in text, text


def test_a_lost_batch_is_looked_up_among_recent_tasks_only(taskerd, pg,
                                                           proxy):
    """The lookup reads the tasks above a floor: the highest id stored
    when the batch went out.  That floor moved only with the node's own
    creations, so a node that creates rarely, beside others that create
    much, scanned all their tasks since its start (request ids have no
    index: a lookup past the statement timeout answers "unknown").  The
    lease renewals move it now, to the highest id of any node's."""
    db = pg.createdb()
    t = taskerd(templates={"order.yaml": TEMPLATE}, db=db,
                config={"database.dsn": proxy.dsn(db),
                        "scheduler": {"lease": "1500ms"}})
    other = taskerd(templates={"order.yaml": TEMPLATE}, db=db)
    ids = [other.create_task("order", {"order": "o%d" % i},
                             namespace=NS)["task_id"] for i in range(5)]
    # Two renewals (every 500 ms) after the last of them was stored: the
    # highest id is read after each.
    harness.wait_until(lambda: pg.scalar(db, (
        "SELECT heartbeat_at > (SELECT max(created_at) FROM tasks)"
        " + interval '1 second' FROM nodes WHERE id = '%s'")
        % t.config["node_id"]) == "t", 10, message="two renewals since")
    proxy.lose_answer_to(b"order-late")
    r = create(t, "order-late")
    assert r.status == 201, (r.status, r.body)
    line = t.log_lines("task batch answer lost, looking")[-1]
    after = int(line.split("after_id=")[1].split()[0])
    assert after >= max(ids), line
    assert after < r.body["task_id"], line


def test_an_action_whose_answer_was_lost_may_have_been_applied(taskerd, pg,
                                                                proxy):
    """An operator's cancel reached the database and the connection broke
    before its answer: 503 outcome_unknown, "read the task" - it was 503
    "try again", and the cancel sent again met a 409 (it had been
    applied)."""
    db = pg.createdb()
    t = taskerd(templates={"slow.yaml": """\
name: slow
namespace_name: lost
version: 1.0.0
step_templates:
  - name: wait
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""}, db=db, config={"database.dsn": proxy.dsn(db)})
    tid = t.create_task("slow", {}, namespace=NS)["task_id"]
    proxy.lose_answer_to(b"cancel-answer-lost")
    r = t.request("DELETE", "/v1/tasks/%d" % tid,
                  json={"reason": "cancel-answer-lost"})
    assert proxy.lost.is_set(), "the proxy never saw the statement"
    err = harness.assert_json_error(r, 503, "outcome_unknown")
    assert "read the task" in err["message"], err
    assert r.headers.get("Retry-After") == "1"
    assert t.wait_task(tid, timeout=20)["status"] == "cancelled"
    # Sent again, it says what happened.
    r = t.request("DELETE", "/v1/tasks/%d" % tid, json={"reason": "again"})
    harness.assert_json_error(r, 409, "invalid_state")


@pytest.mark.parametrize("fields", [
    b"SPANIC\0VPANIC\0CXX000\0Mcould not write to file \"pg_wal\"\0\0",
    b"SERROR\0VERROR\0Man error with no code\0\0",
], ids=["panic", "no_sqlstate"])
def test_an_error_that_settles_nothing_is_a_lost_answer(node, proxy, fields):
    """The batch's transaction commits, and in place of its answer the
    connection says an error that does not tell whether it did: a
    server's PANIC (it crashed, perhaps while committing), or an error
    with no SQLSTATE (libpq's own, such as running out of memory for a
    result).  taskerd looks the task up, as for a lost answer, and answers
    201.  Both were taken for a rollback: "nothing was created, try
    again", and the client's retry made a second task."""
    t = node
    proxy.lose_answer_to(b"order-unsettled", instead=fields)
    r = create(t, "order-unsettled")
    assert proxy.lost.is_set(), "the proxy never saw the statement"
    assert r.status == 201, (r.status, r.body)
    assert stored(t, "order-unsettled") == 1
    assert t.log_lines("task batch answer lost"), t.log_tail(40)
    assert t.wait_task(r.body["task_id"], timeout=10)["status"] == "complete"


def test_a_session_without_its_prepared_statements_is_made_again(node,
                                                                  proxy):
    """A statement runs on a server process that never prepared it (a
    pooler in transaction mode, say): nothing ran, the connection is made
    again, and the answer says to try again, which works.  It was
    answered 500, "database error (26000)", and the log did not say
    why."""
    t = node
    proxy.unprepare = b"order-unprepared"
    r = create(t, "order-unprepared")
    assert proxy.unprepare is None, "the proxy never saw the statement"
    assert r.status == 503, (r.status, r.body)
    assert r.body["error"]["code"] == "database_unavailable", r.body
    assert stored(t, "order-unprepared") == 0
    assert t.log_lines(r'msg="database connection lost" .*a pooler in '
                       r'transaction mode\?'), t.log_tail(20)
    tid = t.create_task("order", {"order": "order-unprepared"},
                        namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
