"""Worker liveness (issue 3, "a hung worker is not a live one").

The supervisor pings every worker, idle or busy, every
workers.ping_interval; one silent for workers.ping_timeout is killed
(log: msg="worker not answering, killing"), replaced, and the step it held
fails with code "worker_unresponsive" and is retried.  A worker that is
merely busy on a slow step keeps answering and is left alone.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime

import harness

WORKERS = 2
PING = {"workers.ping_interval": "200ms", "workers.ping_timeout": "1s"}
NS = "live"


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def step_transitions(t, task_id, step):
    r = t.get("/v1/tasks/%s/steps/%s/transitions" % (task_id, step))
    assert r.status == 200, (r.status, r.body)
    return r.body["transitions"]


def pairs(transitions):
    return [(x["from_state"], x["to_state"]) for x in transitions]


def pool_full(t, exclude=()):
    ws = t.workers()
    ok = len(ws) == WORKERS and all(
        isinstance(w.get("pid"), int) and w["pid"] > 0
        and w.get("state") in ("idle", "busy") and w["pid"] not in exclude
        and harness.proc_ppid(w["pid"]) == t.pid for w in ws)
    return ws if ok else None


@contextmanager
def stopped(t, pid):
    """SIGSTOP one of t's workers; SIGCONT it on the way out if it is
    still there (and still ours)."""
    assert harness.proc_ppid(pid) == t.pid, \
        "pid %d is not a worker of taskerd %d" % (pid, t.pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        if harness.proc_alive(pid) and harness.proc_ppid(pid) == t.pid:
            os.kill(pid, signal.SIGCONT)


def template(url):
    return """\
name: hang
namespace_name: live
version: 1.0.0
step_templates:
  - name: slow
    handler: http
    default_retry_limit: 3
    timeout: 20s
    backoff: { base: 200ms, max: 1s, jitter: none }
    handler_config:
      method: POST
      url: "%s"
      body: { n: 1 }
  - name: after
    handler: noop
    depends_on_step: slow
""" % url


def slow_first(seconds):
    calls = []
    lock = threading.Lock()

    def handler(req):
        with lock:
            calls.append(req)
            n = len(calls)
        if n == 1:
            time.sleep(seconds)
        return 200, {"ok": True, "call": n}
    return handler


def test_stopped_busy_worker_is_killed_replaced_and_step_retried(taskerd, service):
    service.route("POST", "/slow", slow_first(3))
    t = taskerd(templates={"hang.yaml": template(service.url + "/slow")},
                workers=WORKERS, config=PING)
    tid = t.create_task("hang", {}, namespace=NS)["task_id"]
    service.wait_requests("/slow", 1, timeout=10)

    def busy():
        return [w for w in t.workers() if w.get("state") == "busy"
                and w.get("task_id") == tid and w.get("step") == "slow"]
    victim = harness.wait_until(busy, 5, message="a worker busy on slow")[0]
    vpid = victim["pid"]

    with stopped(t, vpid) as t_stop:
        line = harness.wait_until(
            lambda: t.log_lines(r'msg="worker not answering, killing" '
                                r'pid=%d .*step=slow' % vpid), 6,
            message="the supervisor to give up on worker %d" % vpid)
        harness.wait_until(lambda: not harness.proc_alive(vpid), 5,
                           message="worker %d to be gone" % vpid)
        t_dead = time.monotonic()
    # Silent for ping_timeout (1 s) counted from its last answer, which
    # came at most one ping interval (200 ms) before the stop.
    assert t_dead - t_stop >= 0.8 - 0.05, \
        "killed %.3fs after it stopped; ping_timeout is 1s" % (t_dead - t_stop)
    assert t_dead - t_stop <= 1.2 + 2.5, \
        "killed only %.3fs after it stopped" % (t_dead - t_stop)
    assert "slot=%d" % victim["slot"] in line[0], line
    # The obituary follows the reaping (SIGCHLD) by a moment: wait for it.
    harness.wait_until(
        lambda: t.log_lines(r'msg="worker died" pid=%d .*signal=SIGKILL '
                            r'step=slow task_id=%d attempt=1' % (vpid, tid)),
        5, message="the obituary of the killed worker")

    # Replaced: the pool is full again, without the stopped one.
    ws = harness.wait_until(lambda: pool_full(t, exclude=(vpid,)), 10,
                            message="the pool back at %d workers" % WORKERS)
    assert sum(w["restarts"] for w in ws) == 1, ws

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
        ("pending", "in_progress"), ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"), ("in_progress", "complete"),
    ], pairs(tr)
    fail = tr[1]["metadata"]
    assert fail["attempt"] == 1 and fail["outcome"] == "retryable", fail
    assert fail["error"]["code"] == "worker_unresponsive", fail
    # Not the step's 20 s timeout, nor the service's 3 s answer.
    took = ts(tr[1]["created_at"]) - ts(tr[0]["created_at"])
    assert took < 2.9, "attempt 1 ended %.3fs after it started" % took
    assert not t.log_lines(r'msg="step timed out'), t.log_tail(40)


def test_busy_and_idle_workers_that_answer_are_left_alone(taskerd, service):
    """A step slower than ping_timeout is not a hung worker."""
    service.route("POST", "/slow", slow_first(2.5))
    t = taskerd(templates={"hang.yaml": template(service.url + "/slow")},
                workers=WORKERS, config=PING)
    pids = sorted(w["pid"] for w in harness.wait_until(
        lambda: pool_full(t), 10, message="the pool up"))
    tid = t.create_task("hang", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=20)
    slow = harness.steps_by_name(task)["slow"]
    assert task["status"] == "complete", task
    assert (slow["status"], slow["attempts"]) == ("complete", 1), slow
    assert len(service.requests_for("/slow")) == 1
    time.sleep(1.5)     # idle for longer than ping_timeout as well
    ws = pool_full(t)
    assert ws is not None, t.workers()
    assert sorted(w["pid"] for w in ws) == pids, (ws, pids)
    assert all(w["restarts"] == 0 for w in ws), ws
    assert not t.log_lines(r'worker not answering'), t.log_tail(40)
    assert not t.log_lines(r'msg="worker died"'), t.log_tail(40)


def test_one_worker_answers_through_slow_steps_one_after_another(
        taskerd, service):
    """A worker's main thread runs the step; while a slow one runs, its
    watcher thread answers the pings, and gives the socket back when the
    step ends.  Four steps in a row on one worker, each longer than the
    watcher's look, and a fifth longer than ping_timeout: each is answered
    once, by the same worker, and no step waits on a missed ping."""
    service.route("POST", "/slow", delay=0.3)
    service.route("POST", "/slower", delay=1.5)
    steps = ["  - name: s%d\n    handler: http\n    timeout: 20s\n"
             "    handler_config: { method: POST, url: \"%s/%s\" }\n"
             % (i, service.url, "slower" if i == 5 else "slow")
             + ("    depends_on_step: s%d\n" % (i - 1) if i > 1 else "")
             for i in range(1, 6)]
    t = taskerd(templates={"row.yaml": "name: row\nnamespace_name: live\n"
                           "version: 1.0.0\nstep_templates:\n"
                           + "".join(steps)},
                workers=1, config=PING)
    pid = harness.wait_until(lambda: [w["pid"] for w in t.workers()
                                      if isinstance(w.get("pid"), int)],
                             10, message="the worker up")[0]
    tid = t.create_task("row", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=30)
    assert task["status"] == "complete", task
    for name, step in harness.steps_by_name(task).items():
        assert (step["status"], step["attempts"]) == ("complete", 1), step
    assert len(service.requests_for("/slow")) == 4
    assert len(service.requests_for("/slower")) == 1
    ws = t.workers()
    assert [(w["pid"], w["restarts"]) for w in ws] == [(pid, 0)], ws
    assert not t.log_lines(r'worker not answering'), t.log_tail(40)


def test_stopped_idle_worker_is_replaced(taskerd):
    t = taskerd(templates={"quick.yaml": """\
name: quick
namespace_name: live
version: 1.0.0
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
"""}, workers=WORKERS, config=PING)
    ws = harness.wait_until(lambda: pool_full(t), 10, message="the pool up")
    victim = ws[0]
    with stopped(t, victim["pid"]):
        harness.wait_until(
            lambda: t.log_lines(r'msg="worker not answering, killing" '
                                r'pid=%d .*step=none' % victim["pid"]), 6,
            message="the supervisor to give up on idle worker %d"
            % victim["pid"])
        harness.wait_until(lambda: not harness.proc_alive(victim["pid"]), 5,
                           message="worker %d to be gone" % victim["pid"])
    ws = harness.wait_until(lambda: pool_full(t, exclude=(victim["pid"],)),
                            10, message="the pool back at %d" % WORKERS)
    assert [w["restarts"] for w in ws if w["slot"] == victim["slot"]] == [1], ws
    # The pool still works, the replacement included.
    tid = t.create_task("quick", {}, namespace=NS)["task_id"]
    task = t.wait_task(tid, timeout=10)
    assert task["status"] == "complete", task


def test_stalled_supervisor_does_not_blame_its_workers(taskerd):
    """The supervisor itself stops for longer than ping_timeout (a paused
    VM, a swapping host): no pings went out meanwhile, so its workers'
    silence is not theirs.  None is killed and the running step finishes
    its one attempt."""
    t = taskerd(templates={"slow.yaml": """\
name: slow
namespace_name: live
version: 1.0.0
step_templates:
  - name: work
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""}, workers=WORKERS, config=PING)
    harness.wait_until(lambda: pool_full(t), 10, message="the pool up")
    tid = t.create_task("slow", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy" for w in t.workers()),
                       10, message="the step running")
    os.kill(t.pid, signal.SIGSTOP)
    try:
        time.sleep(1.8)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    task = t.wait_task(tid, timeout=15)
    assert task["status"] == "complete", task
    assert task["steps"][0]["attempts"] == 1, task["steps"]
    assert not t.log_lines("worker not answering"), t.log_tail(30)
    assert t.log_lines("supervisor loop stalled"), t.log_tail(30)
