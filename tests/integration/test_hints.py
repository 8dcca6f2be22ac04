"""Nodes wake each other: a node that leaves ready work unclaimed sends a
NOTIFY hint, and an idle node sharing the database claims the work at once
instead of at its next claim timer (every 5 s)."""

import threading
import time

import harness

SLOW = """\
name: hint_slow
namespace_name: it
version: 1.0.0
step_templates:
  - name: nap
    handler: http
    timeout: 60s
    handler_config: { method: POST, url: "@SVC@/nap" }
"""

QUICK = """\
name: hint_quick
namespace_name: it
version: 1.0.0
step_templates:
  - name: go
    handler: noop
"""


def test_idle_node_takes_work_the_busy_node_left_unclaimed(taskerd, service):
    # The slow step's call lasts until the test is done with the quick
    # tasks (50 s at most): A stays busy throughout.
    done = threading.Event()
    service.route("POST", "/nap", lambda req: (done.wait(50),
                                              (200, {"ok": True}))[1])
    templates = {"slow.yaml": SLOW.replace("@SVC@", service.url),
                 "quick.yaml": QUICK}
    # A: one worker and no prefetch, so it has room for one step only.
    a = taskerd(templates=templates, workers=1,
                config={"scheduler.prefetch": 0})
    b = taskerd(templates=templates, workers=1, db=a.db)
    b_node = b.config["node_id"]

    try:
        busy = a.create_task("hint_slow", {}, namespace="it")["task_id"]
        harness.wait_until(
            lambda: a.task(busy)["steps"][0]["status"] in ("enqueued",
                                                           "in_progress"),
            10, message="A busy with the slow step")
        # Let both nodes' claim timers pass a turn, so what follows is not
        # their backstop by chance.
        time.sleep(0.5)
        for i in range(3):
            t0 = time.monotonic()
            tid = a.create_task("hint_quick", {"i": i},
                                namespace="it")["task_id"]
            task = a.wait_task(tid, timeout=10)
            took = time.monotonic() - t0
            assert task["status"] == "complete", task
            assert took < 2.0, "task %d took %.2fs: the idle node waited " \
                "for its timer instead of the hint" % (tid, took)
            r = a.get("/v1/tasks/%d/steps/go/transitions" % tid)
            starts = [x for x in r.body["transitions"]
                      if x["to_state"] == "in_progress"]
            assert [x["metadata"]["node"] for x in starts] == [b_node], \
                starts
            time.sleep(0.3)
    finally:
        done.set()
    assert a.wait_task(busy, timeout=20)["status"] == "complete"
