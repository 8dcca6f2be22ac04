"""A worker killed with SIGKILL in the middle of a step.

The supervisor must keep serving, record the attempt as a retryable failure,
run the step again on a fresh worker (same idempotency key), finish the task,
write one obituary line for the dead worker and bring the pool back to size.
"""

import os
import re
import signal
import threading
import time

import harness

TEMPLATE = """\
name: crashy
namespace_name: it
version: 1.0.0
step_templates:
  - name: slow_call
    handler: http
    default_retry_limit: 3
    timeout: 20s
    backoff: { base: 100ms, max: 500ms }
    handler_config:
      method: POST
      url: "@SVC@/slow"
      body: { order: "{{context.order}}" }
  - name: after
    handler: noop
    depends_on_step: slow_call
"""

WORKERS = 2


def test_sigkill_worker_mid_step(taskerd, service, pg):
    calls = []
    lock = threading.Lock()

    def slow(req):
        with lock:
            calls.append(req)
            n = len(calls)
        if n == 1:
            time.sleep(3)           # the worker is killed while it waits
        return 200, {"ok": True, "call": n}
    service.route("POST", "/slow", slow)

    t = taskerd(templates={"crashy.yaml": TEMPLATE.replace("@SVC@", service.url)},
                workers=WORKERS)
    tid = t.create_task("crashy", {"order": 42}, namespace="it")["task_id"]

    # The first attempt is in flight: the service has the request and the
    # pool shows the worker busy on our step.
    service.wait_requests("/slow", 1, timeout=10)

    def busy_worker():
        return [w for w in t.workers() if w.get("state") == "busy"
                and w.get("step") == "slow_call" and w.get("task_id") == tid]
    victim = harness.wait_until(busy_worker, 10, message="a worker busy on slow_call")[0]
    pid, slot, restarts_before = victim["pid"], victim["slot"], victim["restarts"]
    assert harness.proc_ppid(pid) == t.pid, \
        "worker pid %s is not a child of taskerd %s" % (pid, t.pid)

    os.kill(pid, signal.SIGKILL)

    # The supervisor keeps answering at once.
    r = t.get("/health/live", timeout=2)
    assert (r.status, r.body) == (200, {"status": "ok"}), r

    task = t.wait_task(tid, timeout=30)
    assert task["status"] == "complete", task
    steps = harness.steps_by_name(task)
    assert steps["slow_call"]["status"] == "complete", steps["slow_call"]
    assert steps["slow_call"]["attempts"] == 2, steps["slow_call"]
    assert steps["slow_call"]["results"] == {"ok": True, "call": 2}
    assert steps["after"]["status"] == "complete" and steps["after"]["attempts"] == 1

    # Both attempts carried the same idempotency key.
    keys = [r.headers.get("Idempotency-Key") for r in service.requests_for("/slow")]
    assert keys == ["%d:slow_call" % tid] * 2, keys

    # The history shows the interrupted attempt.
    runs = [r for r in harness.step_transitions(pg, t.db, tid)
            if r["name"] == "slow_call"]
    states = [r["to_state"] for r in runs]
    assert states.count("in_progress") == 2, states
    after_first = states[states.index("in_progress") + 1]
    assert after_first not in ("complete", "error"), states

    # One obituary line, naming the pid, the signal and the step.
    def died_lines():
        return t.log_lines(r'msg="?worker died"?')
    lines = harness.wait_until(died_lines, 5, message="a 'worker died' log line")
    assert len(lines) == 1, "expected one 'worker died' line:\n" + "\n".join(lines)
    line = lines[0]
    for field, value in (("pid", pid), ("slot", slot), ("signal", "SIGKILL"),
                         ("step", "slow_call"), ("task_id", tid)):
        assert re.search(r'(^|\s)%s="?%s"?(\s|$)' % (field, re.escape(str(value))),
                         line), "%s=%s missing from: %s" % (field, value, line)

    # The pool is back to full size, the killed pid gone, its slot restarted.
    def pool_restored():
        ws = t.workers()
        pids = [w["pid"] for w in ws]
        if len(ws) == WORKERS and pid not in pids and all(
                w["state"] in ("idle", "busy") and harness.proc_alive(w["pid"])
                for w in ws):
            return ws
        return None
    workers = harness.wait_until(pool_restored, 10, message="the pool back to %d" % WORKERS)
    assert not harness.proc_alive(pid)
    for w in workers:
        assert harness.proc_ppid(w["pid"]) == t.pid, w
    restarted = [w for w in workers if w["slot"] == slot]
    assert restarted and restarted[0]["restarts"] > restarts_before, workers
