"""Step timeouts (issue 3, acceptance 5).

At a step's `timeout` the supervisor stops the worker running it (SIGTERM,
SIGKILL after a 2 s grace), the attempt is a retryable failure with code
"timeout", the step is retried on a fresh worker, and the pool is back at
workers.count live workers.
"""

import os
import signal
import threading
import time
from datetime import datetime

import harness

WORKERS = 2
EARLY = 0.03
LATE = 1.5


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def step_transitions(t, task_id, step):
    r = t.get("/v1/tasks/%s/steps/%s/transitions" % (task_id, step))
    assert r.status == 200, (r.status, r.body)
    return r.body["transitions"]


def pairs(transitions):
    return [(x["from_state"], x["to_state"]) for x in transitions]


def busy_worker(t, task_id, step, attempt=None):
    """The worker GET /v1/workers shows running task_id/step (a child of
    this taskerd), or None."""
    for w in t.workers():
        if w.get("state") == "busy" and w.get("task_id") == task_id \
                and w.get("step") == step \
                and (attempt is None or w.get("attempt") == attempt):
            assert harness.proc_ppid(w["pid"]) == t.pid, \
                "worker %r is not a child of taskerd %s" % (w, t.pid)
            return w
    return None


def pool_full(t, exclude=()):
    """workers.count workers, each with a live process of ours, none empty,
    starting or exiting; and none of the pids in exclude."""
    ws = t.workers()
    ok = len(ws) == WORKERS and all(
        isinstance(w.get("pid"), int) and w["pid"] > 0
        and w.get("state") in ("idle", "busy")
        and w["pid"] not in exclude
        and harness.proc_ppid(w["pid"]) == t.pid for w in ws)
    return ws if ok else None


def test_http_step_past_its_timeout_is_killed_and_retried(taskerd, service):
    calls = []
    lock = threading.Lock()

    def slow_once(req):
        with lock:
            calls.append(req)
            n = len(calls)
        if n == 1:
            time.sleep(3)       # the attempt's 1 s runs out meanwhile
        return 200, {"ok": True, "call": n}
    service.route("POST", "/slow", slow_once)
    tmpl = """\
name: slowpoke
namespace_name: timeouts
version: 1.0.0
step_templates:
  - name: slow
    handler: http
    default_retry_limit: 3
    timeout: 1s
    backoff: { base: 200ms, max: 1s, jitter: none }
    handler_config:
      method: POST
      url: "@SVC@/slow"
      body: { n: 1 }
  - name: after
    handler: noop
    depends_on_step: slow
""".replace("@SVC@", service.url)
    t = taskerd(templates={"slowpoke.yaml": tmpl}, workers=WORKERS)
    tid = t.create_task("slowpoke", {}, namespace="timeouts")["task_id"]

    service.wait_requests("/slow", 1, timeout=10)
    victim = harness.wait_until(lambda: busy_worker(t, tid, "slow", 1), 5,
                                message="a worker busy on attempt 1")
    vpid = victim["pid"]

    task = t.wait_task(tid, timeout=20)
    steps = harness.steps_by_name(task)
    slow = steps["slow"]
    assert task["status"] == "complete", task
    assert (slow["status"], slow["attempts"]) == ("complete", 2), slow
    assert slow["results"] == {"ok": True, "call": 2}, slow
    assert steps["after"]["status"] == "complete", steps["after"]
    assert len(service.requests_for("/slow")) == 2

    tr = step_transitions(t, tid, "slow")
    assert pairs(tr) == [
        ("pending", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "complete"),
    ], pairs(tr)
    fail = tr[1]["metadata"]
    assert fail.get("attempt") == 1, fail
    assert fail.get("outcome") == "retryable", fail
    assert fail["error"]["code"] == "timeout", fail
    # The attempt ended at its timeout: not before 1 s, long before the
    # service's 3 s answer.
    took = ts(tr[1]["created_at"]) - ts(tr[0]["created_at"])
    assert 1.0 - EARLY <= took < 2.5, "attempt 1 ended after %.3fs" % took

    # The supervisor stopped that worker, said so, and replaced it.
    lines = t.log_lines(r'msg="step timed out, stopping worker".*'
                        r'pid=%d .*task_id=%d step=slow attempt=1 '
                        r'timeout_ms=1000' % (vpid, tid))
    assert lines, "no timeout line for worker %d in the log:\n%s" % (
        vpid, t.log_tail(60))
    assert t.log_lines(r'msg="worker died" pid=%d .*signal=SIGTERM '
                       r'step=slow task_id=%d attempt=1' % (vpid, tid)), \
        t.log_tail(60)
    harness.wait_until(lambda: not harness.proc_alive(vpid), 5,
                       message="the timed-out worker %d to be gone" % vpid)
    ws = harness.wait_until(lambda: pool_full(t, exclude=(vpid,)), 10,
                            message="the pool back at %d live workers" % WORKERS)
    assert not any(w["state"] == "empty" for w in ws), ws
    assert sum(w["restarts"] for w in ws) == 1, ws


def test_noop_step_always_past_its_timeout_ends_in_error(taskerd):
    tmpl = """\
name: sleepy
namespace_name: timeouts
version: 1.0.0
step_templates:
  - name: nap
    handler: noop
    default_retry_limit: 2
    timeout: 500ms
    backoff: { base: 200ms, max: 1s, jitter: none }
    handler_config: { sleep_ms: 5000 }
  - name: after
    handler: noop
    depends_on_step: nap
"""
    t = taskerd(templates={"sleepy.yaml": tmpl}, workers=WORKERS)
    t0 = time.monotonic()
    tid = t.create_task("sleepy", {}, namespace="timeouts")["task_id"]
    task = t.wait_task(tid, timeout=20)
    elapsed = time.monotonic() - t0
    steps = harness.steps_by_name(task)
    nap = steps["nap"]
    assert task["status"] == "error", task
    assert (nap["status"], nap["attempts"], nap["retry_limit"]) == \
        ("error", 2, 2), nap
    assert nap["last_error"]["code"] == "timeout", nap
    assert steps["after"]["status"] == "pending", steps["after"]
    # Two 500 ms attempts and a 200 ms backoff; never the 5 s sleep.
    assert 1.2 - EARLY <= elapsed < 4.5, "took %.3fs" % elapsed

    tr = step_transitions(t, tid, "nap")
    assert pairs(tr) == [
        ("pending", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "error"),
    ], pairs(tr)
    for i in (1, 3):
        assert tr[i]["metadata"]["error"]["code"] == "timeout", tr[i]
        took = ts(tr[i]["created_at"]) - ts(tr[i - 1]["created_at"])
        assert 0.5 - EARLY <= took < 0.5 + LATE, (i, took, tr)
    assert [x["metadata"]["attempt"] for x in tr] == [1, 1, 2, 2], tr

    assert len(t.log_lines(r'msg="step timed out, stopping worker".*'
                           r'task_id=%d step=nap' % tid)) == 2, t.log_tail(60)
    ws = harness.wait_until(lambda: pool_full(t), 10,
                            message="the pool back at %d live workers" % WORKERS)
    assert sum(w["restarts"] for w in ws) == 2, ws


def test_worker_ignoring_sigterm_is_killed_after_the_grace(taskerd, service):
    """A stopped worker cannot act on SIGTERM: 2 s later it gets SIGKILL."""
    calls = {"n": 0}
    lock = threading.Lock()

    def slow_once(req):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 1:
            time.sleep(5)
        return 200, {"call": n}
    service.route("POST", "/frozen", slow_once)
    tmpl = """\
name: frozen
namespace_name: timeouts
version: 1.0.0
step_templates:
  - name: nap
    handler: http
    default_retry_limit: 2
    timeout: 1s
    backoff: { base: 200ms, max: 1s, jitter: none }
    handler_config:
      method: POST
      url: "@SVC@/frozen"
""".replace("@SVC@", service.url)
    # Pings far apart: liveness must not be what kills the stopped worker.
    t = taskerd(templates={"frozen.yaml": tmpl}, workers=WORKERS,
                config={"workers.ping_interval": "5s",
                        "workers.ping_timeout": "30s"})
    tid = t.create_task("frozen", {}, namespace="timeouts")["task_id"]
    victim = harness.wait_until(lambda: busy_worker(t, tid, "nap", 1), 5,
                                message="a worker busy on attempt 1")
    vpid = victim["pid"]
    # Stop it only once its call is in the service: stopped earlier, the
    # retry would make the first (slow) call instead.
    harness.wait_until(lambda: calls["n"] >= 1, 5,
                       message="attempt 1's call at the service")
    os.kill(vpid, signal.SIGSTOP)
    try:
        task = t.wait_task(tid, timeout=20)
    finally:
        if harness.proc_alive(vpid) and harness.proc_ppid(vpid) == t.pid:
            os.kill(vpid, signal.SIGCONT)
    nap = harness.steps_by_name(task)["nap"]
    assert task["status"] == "complete", task
    assert (nap["status"], nap["attempts"]) == ("complete", 2), nap

    tr = step_transitions(t, tid, "nap")
    assert pairs(tr)[:2] == [("pending", "in_progress"),
                             ("in_progress", "waiting_for_retry")], tr
    assert tr[1]["metadata"]["error"]["code"] == "timeout", tr[1]
    # Timeout (1 s) plus the grace (2 s) before the attempt was over.
    took = ts(tr[1]["created_at"]) - ts(tr[0]["created_at"])
    assert 3.0 - EARLY <= took < 3.0 + LATE, "attempt 1 ended after %.3fs" % took
    assert t.log_lines(r'msg="step timed out, stopping worker" pid=%d ' % vpid), \
        t.log_tail(60)
    assert t.log_lines(r'msg="worker died" pid=%d .*signal=SIGKILL step=nap'
                       % vpid), t.log_tail(60)
    harness.wait_until(lambda: pool_full(t, exclude=(vpid,)), 10,
                       message="the pool back at %d live workers" % WORKERS)


def test_step_timeout_defaults_from_config(taskerd):
    tmpl = """\
name: defaulted
namespace_name: timeouts
version: 1.0.0
step_templates:
  - name: nap
    handler: noop
    default_retry_limit: 1
    handler_config: { sleep_ms: 5000 }
"""
    t = taskerd(templates={"defaulted.yaml": tmpl}, workers=WORKERS,
                config={"steps.timeout": "700ms"})
    tid = t.create_task("defaulted", {}, namespace="timeouts")["task_id"]
    task = t.wait_task(tid, timeout=20)
    nap = task["steps"][0]
    assert task["status"] == "error", task
    assert (nap["status"], nap["attempts"]) == ("error", 1), nap
    assert nap["last_error"]["code"] == "timeout", nap
    assert nap.get("timeout_ms") == 700, nap
    tr = step_transitions(t, tid, "nap")
    took = ts(tr[1]["created_at"]) - ts(tr[0]["created_at"])
    assert 0.7 - EARLY <= took < 0.7 + LATE, took
    assert t.log_lines(r'msg="step timed out, stopping worker".*step=nap '
                       r'attempt=1 timeout_ms=700'), t.log_tail(40)
