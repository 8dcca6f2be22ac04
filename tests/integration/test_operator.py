"""Operator actions (issue 3, acceptance 8).

DELETE /v1/tasks/{id}                 cancel: what has not started never
                                      will; what runs is not retried.
PATCH /v1/tasks/{id}/steps/{step}     retry | resolve_manually |
                                      complete_manually, with a reason.

Each one is checked through what a user sees: the answer, the task and
step states afterwards, the requests the services received, and the audit
history (the step's transitions carry {"action", "actor", "reason"}).
"""

import os
import signal
import threading
import time

import pytest

import harness
from pgproxy import PgProxy

NS = "ops"


def step_transitions(t, task_id, step):
    r = t.get("/v1/tasks/%s/steps/%s/transitions" % (task_id, step))
    assert r.status == 200, (r.status, r.body)
    return r.body["transitions"]


def task_transitions(t, task_id):
    r = t.get("/v1/tasks/%s/transitions" % task_id)
    assert r.status == 200, (r.status, r.body)
    return r.body["transitions"]


def pairs(transitions):
    return [(x["from_state"], x["to_state"]) for x in transitions]


def patch_step(t, task_id, step, body):
    return t.patch("/v1/tasks/%s/steps/%s" % (task_id, step), json=body)


def step(t, task_id, name):
    r = t.get("/v1/tasks/%s/steps/%s" % (task_id, name))
    assert r.status == 200, (r.status, r.body)
    return r.body


def counted(answers):
    """Route handler answering answers[i] to call i (the last repeats);
    an answer may be a function of the request."""
    lock = threading.Lock()
    n = {"calls": 0}

    def handler(req):
        with lock:
            i = n["calls"]
            n["calls"] += 1
        a = answers[min(i, len(answers) - 1)]
        return a(req) if callable(a) else a
    return handler


def http_step(name, url, limit=3, backoff="{ base: 200ms, max: 1s, jitter: none }",
              deps=(), body=None, timeout="10s"):
    text = """\
  - name: {name}
    handler: http
    default_retry_limit: {limit}
    timeout: {timeout}
    backoff: {backoff}
""".format(name=name, limit=limit, backoff=backoff, timeout=timeout)
    if deps:
        text += "    depends_on_steps: [%s]\n" % ", ".join(deps)
    text += "    handler_config:\n      method: POST\n      url: \"%s\"\n" % url
    text += "      body: %s\n" % (body or "{ task: x }")
    return text


def noop_step(name, deps=(), config=None):
    text = "  - name: %s\n    handler: noop\n" % name
    if deps:
        text += "    depends_on_steps: [%s]\n" % ", ".join(deps)
    if config:
        text += "    handler_config: %s\n" % config
    return text


def template(name, *steps):
    return ("name: %s\nnamespace_name: %s\nversion: 1.0.0\nstep_templates:\n"
            % (name, NS)) + "".join(steps)


def test_cancel(taskerd, service):
    cancelled = threading.Event()

    def slow(status, body):
        # Running until the cancel has been answered (20 s at most).
        def fn(req):
            cancelled.wait(20)
            return status, body
        return fn
    # doomed: running at cancel time, then fails retryably -> cancelled.
    # lucky: running at cancel time, then succeeds -> complete.
    # waiter: waiting_for_retry (a 10 s backoff) at cancel time.
    service.route("POST", "/doomed", counted([slow(500, {"error": "late"})]))
    service.route("POST", "/lucky", counted([slow(200, {"ok": True})]))
    service.route("POST", "/waiter", status=503, body={"error": "busy"})
    service.route("POST", "/child", status=200, body={"ok": True})
    t = taskerd(workers=3, templates={"cancelme.yaml": template(
        "cancelme",
        http_step("doomed", service.url + "/doomed", timeout="30s"),
        http_step("lucky", service.url + "/lucky", timeout="30s"),
        http_step("waiter", service.url + "/waiter",
                  backoff="{ base: 10s, max: 10s, jitter: none }"),
        http_step("child", service.url + "/child", deps=("doomed",)),
        http_step("grandchild", service.url + "/child", deps=("child",)),
        http_step("lucky_child", service.url + "/child", deps=("lucky",)),
    )})
    tid = t.create_task("cancelme", {}, namespace=NS)["task_id"]
    try:
        service.wait_requests("/doomed", 1, timeout=10)
        service.wait_requests("/lucky", 1, timeout=10)
        harness.wait_until(lambda: step(t, tid, "waiter")["status"] ==
                           "waiting_for_retry", 10, message="waiter waiting")
        # A running step shows in_progress once it has run ~100 ms.
        for name in ("doomed", "lucky"):
            harness.wait_until(lambda: step(t, tid, name)["status"] ==
                               "in_progress", 10,
                               message=name + " in_progress")

        r = t.request("DELETE", "/v1/tasks/%s" % tid,
                      json={"reason": "customer withdrew the order",
                            "actor": "ops-alice"})
    finally:
        cancelled.set()     # the running calls end only now
    assert r.status == 200, (r.status, r.body)
    assert r.body["status"] == "cancelled", r.body
    st = harness.steps_by_name(r.body)
    assert st["doomed"]["status"] == "in_progress", st["doomed"]
    assert st["lucky"]["status"] == "in_progress", st["lucky"]
    for name in ("waiter", "child", "grandchild", "lucky_child"):
        assert st[name]["status"] == "cancelled", st[name]
        assert st[name]["next_attempt_at"] is None, st[name]

    # The running attempts finish; neither is retried, nothing else runs.
    def settled():
        s = harness.steps_by_name(t.task(tid))
        return s if s["doomed"]["status"] != "in_progress" and \
            s["lucky"]["status"] != "in_progress" else None
    s = harness.wait_until(settled, 10, message="the running steps to end")
    time.sleep(1.0)     # well past doomed's 200 ms backoff
    task = t.task(tid)
    s = harness.steps_by_name(task)
    assert task["status"] == "cancelled", task
    assert (s["doomed"]["status"], s["doomed"]["attempts"]) == \
        ("cancelled", 1), s["doomed"]
    assert s["doomed"]["last_error"]["http_status"] == 500, s["doomed"]
    assert (s["lucky"]["status"], s["lucky"]["attempts"]) == \
        ("complete", 1), s["lucky"]
    assert (s["waiter"]["status"], s["waiter"]["attempts"]) == \
        ("cancelled", 1), s["waiter"]
    for name in ("child", "grandchild", "lucky_child"):
        assert (s[name]["status"], s[name]["attempts"]) == \
            ("cancelled", 0), s[name]
    assert len(service.requests_for("/doomed")) == 1, service.requests
    assert len(service.requests_for("/lucky")) == 1, service.requests
    assert len(service.requests_for("/waiter")) == 1, service.requests
    assert service.requests_for("/child") == [], service.requests

    # The history says who cancelled and why.
    want = {"action": "cancel", "actor": "ops-alice",
            "reason": "customer withdrew the order"}
    for name, frm in (("waiter", "waiting_for_retry"), ("child", "pending"),
                      ("grandchild", "pending"), ("lucky_child", "pending")):
        tr = step_transitions(t, tid, name)
        assert tr[-1]["from_state"] == frm and tr[-1]["to_state"] == "cancelled", tr
        assert tr[-1]["metadata"] == want, tr[-1]
    tr = step_transitions(t, tid, "doomed")
    assert pairs(tr) == [("pending", "in_progress"),
                         ("in_progress", "cancelled")], tr
    assert tr[-1]["metadata"]["error"]["http_status"] == 500, tr[-1]
    task_tr = [x for x in task_transitions(t, tid) if x["scope"] == "task"]
    assert (task_tr[-1]["from_state"], task_tr[-1]["to_state"]) == \
        ("in_progress", "cancelled"), task_tr
    assert task_tr[-1]["metadata"] == want, task_tr[-1]

    # Once is enough.
    r = t.request("DELETE", "/v1/tasks/%s" % tid, json={"reason": "again"})
    harness.assert_json_error(r, 409, "invalid_state")
    r = t.delete("/v1/tasks/%s" % tid)
    harness.assert_json_error(r, 409, "invalid_state")
    r = patch_step(t, tid, "child", {"action": "complete_manually",
                                     "reason": "too late"})
    harness.assert_json_error(r, 409, "invalid_state")
    r = t.delete("/v1/tasks/987654")
    harness.assert_json_error(r, 404)
    assert t.task(tid)["status"] == "cancelled"


def slow_and_quick(service):
    """Templates "s", whose call is answered once the returned event is
    set (20 s at most), and "q", answered at once (at /queued).  Returns
    (templates, event)."""
    release = threading.Event()
    service.route("POST", "/slow", handler=lambda req: (
        release.wait(20), (200, {"ok": True}))[1])
    service.route("POST", "/queued", status=200, body={"ok": True})
    return {"q.yaml": template("q", http_step("only",
                                              service.url + "/queued")),
            "s.yaml": template("s", http_step("only", service.url + "/slow",
                                              timeout="30s"))}, release


def slow_and_quick_behind(taskerd, service, pg, proxy):
    """A one-worker node with slow_and_quick's templates, its database
    reached through proxy: (node, templates, event)."""
    tmpl, release = slow_and_quick(service)
    db = pg.createdb()
    return taskerd(workers=1, templates=tmpl, db=db,
                   config={"database.dsn": proxy.dsn(db)}), tmpl, release


def queue_behind_a_busy_worker(t, service, n):
    """A task of "s" busy on t's only worker, then n of "q" whose steps t
    claimed ahead of a free worker ('enqueued'): (busy, [queued])."""
    busy = t.create_task("s", {}, namespace=NS)["task_id"]
    service.wait_requests("/slow", 1, timeout=10)
    queued = [t.create_task("q", {"n": i}, namespace=NS)["task_id"]
              for i in range(n)]
    for tid in queued:
        harness.wait_until(lambda: step(t, tid, "only")["status"] ==
                           "enqueued", 10, message="claimed, queued")
    return busy, queued


def cancelled_unstarted(t, tid, timeout=10):
    """Wait for tid's step to be cancelled; it never ran."""
    s = harness.wait_until(lambda: (lambda x: x if x["status"] ==
                           "cancelled" else None)(step(t, tid, "only")),
                           timeout, message="the queued step cancelled")
    assert s["attempts"] == 0, s
    return s


@pytest.mark.parametrize("via", ["the_same_node", "another_node"])
def test_cancel_drops_steps_queued_for_a_worker(taskerd, service, via):
    """A node claims steps ahead of a free worker ('enqueued').  Those of
    a cancelled task never start, whichever node the cancel came through:
    they are handed back and cancelled (they started once their turn
    came)."""
    tmpl, release = slow_and_quick(service)
    try:
        t = taskerd(workers=1, templates=tmpl)
        busy, queued = queue_behind_a_busy_worker(t, service, 3)
        via_node = t if via == "the_same_node" else \
            taskerd(workers=1, templates=tmpl, db=t.db)
        for tid in queued:
            r = via_node.request("DELETE", "/v1/tasks/%s" % tid,
                                 json={"reason": "not needed"})
            assert r.status == 200 and r.body["status"] == "cancelled", \
                r.body
        for tid in queued:
            cancelled_unstarted(t, tid)
            tr = step_transitions(t, tid, "only")
            assert tr[-1]["to_state"] == "cancelled" and \
                tr[-1]["metadata"] == \
                {"reason": "task cancelled before the step started"}, tr
    finally:
        release.set()       # the worker is free only now
    assert t.wait_task(busy, timeout=15)["status"] == "complete"
    time.sleep(0.5)
    assert service.requests_for("/queued") == [], service.requests


def test_cancel_while_a_node_hands_the_step_back(taskerd, service, pg):
    """A node hands a queued step back (here: it is stopping) while a
    cancel of its task waits for the task's row (an operator's session
    holds it).  The step ends cancelled with its task.  It was left
    'pending' in the cancelled task: the cancel read the steps as they
    were before it waited, and a node could have run the step later."""
    tmpl, release = slow_and_quick(service)
    try:
        t = taskerd(workers=1, templates=tmpl)
        busy, (tid,) = queue_behind_a_busy_worker(t, service, 1)
        # The cancel goes through a node that knows neither template, so
        # that no node claims what the stop hands back.
        other = taskerd(workers=1, db=t.db, templates={
            "other.yaml": template("other", "  - name: x\n"
                                   "    handler: noop\n")},
            config={"database.lock_timeout": "20s",
                    "database.statement_timeout": "30s"})
        holder = pg.psql_background(
            t.db, "BEGIN; SELECT 1 FROM tasks WHERE id = %d FOR SHARE; "
            "SELECT pg_sleep(5); COMMIT" % tid)
        answer = {}
        cancel = threading.Thread(target=lambda: answer.update(r=other.request(
            "DELETE", "/v1/tasks/%s" % tid, json={"reason": "not needed"},
            timeout=30)))
        try:
            harness.wait_until(lambda: pg.scalar(
                t.db, "SELECT count(*) FROM pg_stat_activity WHERE "
                "datname = current_database() AND wait_event = 'PgSleep'")
                != "0", 10, message="a session holds the task's row")
            cancel.start()
            harness.wait_until(lambda: pg.scalar(
                t.db, "SELECT count(*) FROM pg_stat_activity WHERE "
                "datname = current_database() AND wait_event_type = 'Lock'")
                != "0", 10, message="the cancel waits for the task's row")
            os.kill(t.pid, signal.SIGTERM)  # hands its queued step back
            harness.wait_until(lambda: pg.scalar(
                t.db, "SELECT status FROM steps WHERE task_id = %d" % tid)
                == "pending", 10, message="the step handed back")
            assert holder.poll() is None, "the row was let go too soon"
        finally:
            if cancel.ident is not None:
                cancel.join(40)
            holder.wait(30)
        r = answer["r"]
        assert r.status == 200 and r.body["status"] == "cancelled", r.body
        s = step(other, tid, "only")
        assert s["status"] == "cancelled" and s["attempts"] == 0, s
    finally:
        release.set()       # the worker is free only now
    assert t.stop() == 0
    assert service.requests_for("/queued") == [], service.requests


@pytest.mark.parametrize("back", ["all_at_once", "listener_first"])
def test_cancel_heard_while_a_node_was_cut_off(taskerd, service, pg, back):
    """A cancel's notification sent while a node's listening connection
    was down never reaches it: once it is connected again, the node looks
    up the tasks of the steps it has queued, and those of a cancelled
    task never start (they used to start once a worker was free).  The
    listening connection may come back before any of the pool's: the
    look-up goes on it, and the hand-back, which the pool could not take
    yet, is written once it can (the look-up failed for want of a pool
    connection, and was not asked again)."""
    proxy = PgProxy(pg)
    try:
        cut, tmpl, release = slow_and_quick_behind(taskerd, service, pg,
                                                   proxy)
        try:
            busy, queued = queue_behind_a_busy_worker(cut, service, 2)
            other = taskerd(workers=1, templates=tmpl, db=cut.db)
            connected = len(cut.log_lines("database connected"))
            proxy.down_now()
            for tid in queued:
                r = other.request("DELETE", "/v1/tasks/%s" % tid,
                                  json={"reason": "not needed"})
                assert r.status == 200 and \
                    r.body["status"] == "cancelled", r.body
            if back == "listener_first":
                proxy.up(only="taskerd listener")
                harness.wait_until(lambda: proxy.admitted, 15,
                                   message="the listening connection back")
                time.sleep(1)   # its first statements, and the look-up
                assert len(cut.log_lines("database connected")) == \
                    connected + 1, cut.log_tail(20)
            proxy.up()
            for tid in queued:
                cancelled_unstarted(other, tid, timeout=20)
        finally:
            release.set()   # the worker is free only now
        assert other.wait_task(busy, timeout=20)["status"] == "complete"
        time.sleep(0.5)
        assert service.requests_for("/queued") == [], service.requests
    finally:
        proxy.close()


@pytest.mark.parametrize("db_back", [True, False])
def test_a_node_stopping_while_cut_off_hands_back_its_queue(taskerd, service,
                                                           pg, db_back):
    """SIGTERM while the database is away: the hand-back of the steps
    queued for a worker cannot be written.  The node says so, writes it as
    soon as the database answers again and only then exits, the steps
    'pending' for any node (it used to exit once its running step was
    written, leaving them 'enqueued' under its name until another node's
    orphan sweep, 30 s or more later).  If the database stays away past
    the drain deadline, the node exits then, and says how many claims it
    could not hand back."""
    proxy = PgProxy(pg)
    try:
        t, _, release = slow_and_quick_behind(taskerd, service, pg, proxy)
        try:
            busy, queued = queue_behind_a_busy_worker(t, service, 2)
            proxy.down_now()
            t.proc.send_signal(signal.SIGTERM)
            harness.wait_until(
                lambda: t.log_lines("hand-back of claimed steps not written"),
                15, message="the hand-back failed")
            if db_back:
                proxy.up()
        finally:
            release.set()   # the running step ends only now
        t.proc.wait(timeout=20)     # by itself: a second SIGTERM hurries
        assert t.stop() == 0, t.log_tail(30)
        proxy.up()
        rows = pg.query(t.db, "SELECT t.status, s.status,"
                        " coalesce(s.lease_owner, '-') FROM steps s"
                        " JOIN tasks t ON t.id = s.task_id"
                        " WHERE s.task_id IN (%s) ORDER BY s.id"
                        % ",".join(str(x) for x in [busy] + queued))
        line = t.log_lines("hand-back of claimed steps not written")[0]
        assert "count=%d" % len(queued) in line, line
        if db_back:
            assert rows == [["complete", "complete", "-"]] + \
                [["pending", "pending", "-"]] * len(queued), \
                (rows, t.log_tail(30))
        else:
            # Left under its name, for its next start or another node's
            # sweep (the running step's outcome could not be written
            # either).
            node = t.config["node_id"]
            assert rows[0][2] == node and rows[1:] == \
                [["pending", "enqueued", node]] * len(queued), \
                (rows, t.log_tail(30))
            line = t.log_lines("drain deadline passed")[0]
            assert "unreleased=%d" % len(queued) in line, line
        assert service.requests_for("/queued") == [], service.requests
    finally:
        proxy.close()


def test_retry_an_error_step(taskerd, service):
    service.route("POST", "/flaky", counted([
        (500, {"error": "down 1"}), (500, {"error": "down 2"}),
        (200, {"ok": True, "call": 3})]))
    service.route("POST", "/next", status=200, body={"ok": True})
    t = taskerd(templates={"retryme.yaml": template(
        "retryme",
        http_step("flaky", service.url + "/flaky", limit=2),
        http_step("next", service.url + "/next", deps=("flaky",)),
    )})
    tid = t.create_task("retryme", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    s = harness.steps_by_name(task)
    assert task["status"] == "error", task
    assert (s["flaky"]["status"], s["flaky"]["attempts"],
            s["flaky"]["retry_limit"]) == ("error", 2, 2), s["flaky"]

    r = patch_step(t, tid, "flaky", {"action": "retry", "actor": "ops-bob",
                                     "reason": "the service is fixed"})
    assert r.status == 200, (r.status, r.body)
    assert r.body["name"] == "flaky", r.body
    assert r.body["status"] in ("waiting_for_retry", "in_progress",
                                "complete"), r.body
    # A fresh budget: the template's 2 attempts on top of the 2 used.
    assert r.body["retry_limit"] == 4, r.body
    assert r.body["attempts"] >= 2, r.body

    task = t.wait_task(tid, timeout=20)
    s = harness.steps_by_name(task)
    assert task["status"] == "complete", task
    assert (s["flaky"]["status"], s["flaky"]["attempts"],
            s["flaky"]["retry_limit"]) == ("complete", 3, 4), s["flaky"]
    assert s["flaky"]["results"] == {"ok": True, "call": 3}, s["flaky"]
    assert s["next"]["status"] == "complete", s["next"]
    assert len(service.requests_for("/flaky")) == 3
    assert len(service.requests_for("/next")) == 1

    tr = step_transitions(t, tid, "flaky")
    assert pairs(tr) == [
        ("pending", "in_progress"), ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"), ("in_progress", "error"),
        ("error", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"), ("in_progress", "complete"),
    ], pairs(tr)
    assert tr[4]["metadata"] == {"action": "retry", "actor": "ops-bob",
                                 "reason": "the service is fixed"}, tr[4]
    assert tr[5]["metadata"]["attempt"] == 3, tr[5]
    task_tr = [(x["from_state"], x["to_state"]) for x in
               task_transitions(t, tid) if x["scope"] == "task"]
    assert task_tr == [(None, "pending"), ("pending", "in_progress"),
                       ("in_progress", "error"), ("error", "in_progress"),
                       ("in_progress", "complete")], task_tr

    # Retry applies to an error step only.
    r = patch_step(t, tid, "flaky", {"action": "retry", "reason": "again"})
    harness.assert_json_error(r, 409, "invalid_state")


def test_cancel_drops_more_queued_steps_than_one_hand_back_holds(taskerd,
                                                                   service):
    """A hand-back carries 64 claims; a cancelled task with many more
    queued steps than that has none of them started (the ones a pass over
    the queue did not hand back did, as soon as a worker was free)."""
    service.route("POST", "/slow", handler=lambda req: (
        time.sleep(2), (200, {"ok": True}))[1])
    wide = "".join("  - name: s%d\n    handler: noop\n" % i
                   for i in range(600))
    t = taskerd(workers=1, config={"scheduler.prefetch": 1000},
                templates={"s.yaml": template("s", http_step(
                    "only", service.url + "/slow")),
                    "w.yaml": template("w", wide)})
    busy = t.create_task("s", {}, namespace=NS)["task_id"]
    service.wait_requests("/slow", 1, timeout=10)
    tid = t.create_task("w", {}, namespace=NS)["task_id"]
    # (As many as the prefetch lets first steps be claimed: about 500.)
    harness.wait_until(lambda: sum(s["status"] == "enqueued" for s in
                                   t.task(tid)["steps"]) >= 400, 10,
                       message="400 steps queued for the busy worker")
    r = t.request("DELETE", "/v1/tasks/%s" % tid, json={"reason": "r"})
    assert r.status == 200, r.body
    assert t.wait_task(busy, timeout=15)["status"] == "complete"
    steps = harness.wait_until(
        lambda: (lambda s: s if all(x["status"] == "cancelled" for x in s)
                 else None)(t.task(tid)["steps"]), 10,
        message="every queued step cancelled")
    assert all(x["attempts"] == 0 for x in steps), \
        [x for x in steps if x["attempts"]]


def test_retry_of_a_step_allowed_every_attempt_there_is(taskerd, service):
    """retry_limit 2147483647 ("retry for ever"): a retry's fresh budget
    stays at the most an int holds (the sum failed the action with 500)."""
    service.route("POST", "/no", status=400, body={"error": "bad"})
    t = taskerd(templates={"forever.yaml": template(
        "forever", http_step("no", service.url + "/no", limit=2147483647))})
    tid = t.create_task("forever", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid, timeout=20)["status"] == "error"
    r = patch_step(t, tid, "no", {"action": "retry", "reason": "again"})
    assert r.status == 200, (r.status, r.body)
    assert r.body["retry_limit"] == 2147483647, r.body
    harness.wait_until(lambda: step(t, tid, "no")["attempts"] == 2, 10,
                       message="the second attempt")
    assert t.wait_task(tid, timeout=20)["status"] == "error"


def test_retry_puts_the_task_back_in_progress(taskerd, service):
    """Right after the retry, before the new attempt ends, the task is
    in_progress again (not error)."""
    service.route("POST", "/slowfix", counted([
        (500, {"error": "down"}),
        lambda req: (time.sleep(1.5), (200, {"ok": True}))[1]]))
    t = taskerd(templates={"slowfix.yaml": template(
        "slowfix", http_step("fix", service.url + "/slowfix", limit=1))})
    tid = t.create_task("slowfix", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    r = patch_step(t, tid, "fix", {"action": "retry", "reason": "try again"})
    assert r.status == 200, (r.status, r.body)
    assert r.body["retry_limit"] == 2, r.body
    service.wait_requests("/slowfix", 2, timeout=10)
    task = t.task(tid)
    assert task["status"] == "in_progress", task
    assert task["steps"][0]["status"] in ("enqueued", "in_progress"), task
    harness.wait_until(lambda: t.task(tid)["steps"][0]["status"] ==
                       "in_progress", 1, message="the attempt in_progress")
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "complete", task
    assert task["steps"][0]["attempts"] == 2, task


def test_resolve_manually_releases_dependents(taskerd, service):
    service.route("POST", "/reject", status=400, body={"error": "bad input"})
    service.route("POST", "/next", status=200, body={"ok": True})
    t = taskerd(templates={"resolveme.yaml": template(
        "resolveme",
        http_step("broken", service.url + "/reject"),
        http_step("next", service.url + "/next", deps=("broken",)),
        noop_step("last", deps=("next",)),
    )})
    tid = t.create_task("resolveme", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    assert harness.steps_by_name(task)["next"]["status"] == "pending"
    assert service.requests_for("/next") == []

    r = patch_step(t, tid, "broken", {"action": "resolve_manually",
                                      "reason": "fixed by hand in the CRM"})
    assert r.status == 200, (r.status, r.body)
    assert r.body["status"] == "resolved_manually", r.body

    # Its steps all ended well, one by an operator's hand: the task says
    # so (resolved_manually, as DESIGN's task states have it).
    task = t.wait_task(tid, timeout=20)
    s = harness.steps_by_name(task)
    assert task["status"] == "resolved_manually", task
    assert task["completed_at"] is not None, task
    assert s["broken"]["status"] == "resolved_manually", s["broken"]
    assert s["broken"]["attempts"] == 1, s["broken"]
    assert s["next"]["status"] == "complete", s["next"]
    assert s["last"]["status"] == "complete", s["last"]
    assert len(service.requests_for("/next")) == 1
    assert len(service.requests_for("/reject")) == 1

    tr = step_transitions(t, tid, "broken")
    assert pairs(tr)[-1] == ("error", "resolved_manually"), tr
    assert tr[-1]["metadata"] == {"action": "resolve_manually",
                                  "actor": "anonymous",
                                  "reason": "fixed by hand in the CRM"}, tr[-1]

    r = patch_step(t, tid, "broken", {"action": "resolve_manually",
                                      "reason": "twice"})
    harness.assert_json_error(r, 409, "invalid_state")


def test_complete_manually_results_reach_dependents(taskerd, service):
    service.route("POST", "/issue", status=404, body={"error": "no such user"})
    service.route("POST", "/use", status=200, body={"used": True})
    t = taskerd(templates={"completeme.yaml": template(
        "completeme",
        http_step("issue_token", service.url + "/issue"),
        http_step("use_token", service.url + "/use", deps=("issue_token",),
                  body='{ token: "{{steps.issue_token.results.token}}", '
                       'n: "{{steps.issue_token.results.n}}" }'),
    )})
    tid = t.create_task("completeme", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task

    r = patch_step(t, tid, "issue_token", {
        "action": "complete_manually", "actor": "ops-carol",
        "reason": "issued the token by hand",
        "results": {"token": "tok-42", "n": 7}})
    assert r.status == 200, (r.status, r.body)
    assert r.body["status"] == "complete", r.body
    assert r.body["results"] == {"token": "tok-42", "n": 7}, r.body

    task = t.wait_task(tid, timeout=20)
    s = harness.steps_by_name(task)
    assert task["status"] == "complete", task
    assert s["issue_token"]["results"] == {"token": "tok-42", "n": 7}
    assert s["use_token"]["status"] == "complete", s["use_token"]
    (use,) = service.requests_for("/use")
    assert use.json is not None and use.json.get("token") == "tok-42", use.json
    assert str(use.json.get("n")) == "7", use.json

    tr = step_transitions(t, tid, "issue_token")
    assert pairs(tr)[-1] == ("error", "complete"), tr
    assert tr[-1]["metadata"] == {"action": "complete_manually",
                                  "actor": "ops-carol",
                                  "reason": "issued the token by hand"}, tr[-1]


def test_complete_manually_a_waiting_step(taskerd, service):
    """A step waiting for its retry can be completed by hand: it is not
    attempted again and its dependents run."""
    service.route("POST", "/busy", status=503, body={"error": "busy"})
    service.route("POST", "/next", status=200, body={"ok": True})
    t = taskerd(templates={"waitme.yaml": template(
        "waitme",
        http_step("busy", service.url + "/busy",
                  backoff="{ base: 10s, max: 10s, jitter: none }"),
        http_step("next", service.url + "/next", deps=("busy",)),
    )})
    tid = t.create_task("waitme", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: step(t, tid, "busy")["status"] ==
                       "waiting_for_retry", 10, message="busy waiting")
    r = patch_step(t, tid, "busy", {"action": "complete_manually",
                                    "reason": "done elsewhere"})
    assert r.status == 200, (r.status, r.body)
    assert (r.body["status"], r.body["results"]) == ("complete", {}), r.body
    assert r.body["next_attempt_at"] is None, r.body
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "complete", task
    assert len(service.requests_for("/busy")) == 1
    assert len(service.requests_for("/next")) == 1
    tr = step_transitions(t, tid, "busy")
    assert pairs(tr)[-1] == ("waiting_for_retry", "complete"), tr
    assert tr[-1]["metadata"]["reason"] == "done elsewhere", tr[-1]


def test_bad_actions(taskerd):
    t = taskerd(templates={"badacts.yaml": template(
        "badacts",
        noop_step("first", config="{ fail: permanent }"),
        noop_step("second", deps=("first",)),
    )})
    tid = t.create_task("badacts", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    before = harness.row_counts(t.pg, t.db)

    cases = [
        ({"action": "retry"}, 400),                          # no reason
        ({"action": "retry", "reason": ""}, 400),            # empty reason
        ({"action": "retry", "reason": 42}, 400),            # not a string
        ({"reason": "why not"}, 400),                        # no action
        ({"action": "explode", "reason": "why not"}, 400),   # unknown action
        ({"action": "complete_manually", "reason": "r",
          "results": "not an object"}, 400),
        # A misspelt field is not ignored: the step would be completed
        # with {} and its children run without the results.
        ({"action": "complete_manually", "reason": "r",
          "result": {"id": 7}}, 400),
        ({"action": "retry", "reason": "r", "results": {"id": 7}}, 400),
        ({"action": "retry", "reason": "r", "actor": 5}, 400),
    ]
    for body, status in cases:
        r = patch_step(t, tid, "first", body)
        harness.assert_json_error(r, status, "invalid_request")
    r = patch_step(t, tid, "first", {"action": "complete_manually",
                                     "reason": "r", "result": {"id": 7}})
    assert r.body["error"]["message"] == 'unknown field "result"', r.body
    # A cancel's body, the same: its reason goes to the audit trail.
    for body in ({"reason": 5}, {"why": "duplicate order"}):
        r = t.request("DELETE", "/v1/tasks/%s" % tid, json=body)
        harness.assert_json_error(r, 400, "invalid_request")
    r = t.patch("/v1/tasks/%s/steps/first" % tid, data="{not json")
    harness.assert_json_error(r, 400)
    # A 404 names what is missing: the step, or the task itself.
    r = patch_step(t, tid, "nosuch", {"action": "retry", "reason": "r"})
    err = harness.assert_json_error(r, 404, "not_found")
    assert err["message"] == "no such step", err
    r = patch_step(t, 987654, "first", {"action": "retry", "reason": "r"})
    err = harness.assert_json_error(r, 404, "not_found")
    assert err["message"] == "no such task", err
    for path, what in (("/v1/tasks/%s/steps/nosuch" % tid, "step"),
                       ("/v1/tasks/%s/steps/nosuch/transitions" % tid, "step"),
                       ("/v1/tasks/987654/steps/first", "task"),
                       ("/v1/tasks/987654/steps/first/transitions", "task"),
                       ("/v1/tasks/987654/transitions", "task")):
        err = harness.assert_json_error(t.get(path), 404, "not_found")
        assert err["message"] == "no such " + what, (path, err)
    # second is pending: nothing to retry.
    r = patch_step(t, tid, "second", {"action": "retry", "reason": "r"})
    harness.assert_json_error(r, 409, "invalid_state")
    assert harness.row_counts(t.pg, t.db) == before, "a refused action wrote"
    task = t.task(tid)
    assert [x["status"] for x in task["steps"]] == ["error", "pending"], task
    assert task["status"] == "error", task

    # Resolving the pending child of an error step is allowed; the task
    # stays error while its failed step is not dealt with.
    r = patch_step(t, tid, "second", {"action": "resolve_manually",
                                      "reason": "not needed"})
    assert r.status == 200, (r.status, r.body)
    assert r.body["status"] == "resolved_manually", r.body
    assert t.task(tid)["status"] == "error"
    r = patch_step(t, tid, "first", {"action": "resolve_manually",
                                     "reason": "not needed either"})
    assert r.status == 200, (r.status, r.body)
    task = t.wait_task(tid, timeout=10)
    assert task["status"] == "resolved_manually", task
    assert [x["status"] for x in task["steps"]] == \
        ["resolved_manually", "resolved_manually"], task
    # A finished task takes no more actions.
    for name in ("first", "second"):
        for action in ("retry", "resolve_manually", "complete_manually"):
            r = patch_step(t, tid, name, {"action": action, "reason": "r"})
            harness.assert_json_error(r, 409, "invalid_state")
    r = t.delete("/v1/tasks/%s" % tid)
    harness.assert_json_error(r, 409, "invalid_state")
    assert t.task(tid)["status"] == "resolved_manually"
