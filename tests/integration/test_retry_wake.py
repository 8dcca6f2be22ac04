"""A retry is claimed when it is due, not at the 5 s backstop.

Two steps of a task fail (503) at the same moment, with a backoff of 1 ms.
The second outcome waits in the batch while the first one's commits; its
wake-up (armed when the outcome arrived) fires before its own commit, finds
nothing to claim, and, with nothing else due, nothing wakes the scheduler
again until the 5 s backstop.  Every retry must start well within a second.
"""

import threading

import harness

TEMPLATE = """\
name: retry2
namespace_name: it
version: 1.0.0
step_templates:
  - name: x
    handler: http
    retry_limit: 3
    timeout: 5s
    backoff: { base: 1ms, max: 1ms }
    handler_config: { method: POST, url: "@SVC@/flaky" }
  - name: y
    handler: http
    retry_limit: 3
    timeout: 5s
    backoff: { base: 1ms, max: 1ms }
    handler_config: { method: POST, url: "@SVC@/flaky" }
"""


def test_simultaneous_retries_are_not_late(taskerd, service, pg):
    seen, barriers = {}, {}
    lock = threading.Lock()

    def flaky(req):
        key = req.headers.get("Idempotency-Key")
        with lock:
            seen[key] = seen.get(key, 0) + 1
            n = seen[key]
            b = barriers.setdefault(key.split(":")[0], threading.Barrier(2))
        if n == 1:
            b.wait(5)           # both steps fail at the same moment
            return 503, {"n": n}
        return 200, {"n": n}
    service.route("POST", "/flaky", flaky)
    t = taskerd(templates={"r.yaml": TEMPLATE.replace("@SVC@", service.url)},
                workers=2, config={"log.level": "info"})
    for i in range(8):
        tid = t.create_task("retry2", {"i": i}, namespace="it")["task_id"]
        assert t.wait_task(tid, timeout=30)["status"] == "complete"
    gaps = []
    for sid, st in sorted(harness.attempt_history(pg, t.db).items()):
        a = st["attempts"]
        gaps.append(round((a[2]["start"] - a[1]["end"]) / 1e6, 3))
    assert max(gaps) < 1.0, "retry started this long (s) after its " \
        "failed attempt: %s" % gaps
