"""The general claim serves tasks under way before new ones.

A node with room for one step, a ready step of a task under way, and the
first step of an older task not yet started: the step of the task under way
runs first.  By age alone the older task's step would win (its step became
due first); migration 007 orders new tasks' first attempts after every other
ready step, so that a started task is not kept waiting behind a burst of
creations.
"""

import threading

import harness

BLOCKER = """\
name: blocker
step_templates:
  - name: hold
    handler: http
    handler_config:
      method: POST
      url: "@SVC@/hold"
"""

SINGLE = """\
name: single
step_templates:
  - name: only
    handler: noop
"""

PAIR = """\
name: pair
step_templates:
  - name: first
    handler: noop
  - name: second
    handler: noop
    depends_on_step: first
"""


def status_of(t, task_id, step):
    return {s["name"]: s["status"] for s in t.task(task_id)["steps"]}[step]


def test_task_under_way_before_older_new_task(taskerd, service, pg):
    gate = threading.Event()
    service.route("POST", "/hold",
                  lambda req: (gate.wait(60), (200, {"ok": 1}))[1])
    # One worker and no prefetch: the node holds one step at a time.
    t = taskerd(templates={"blocker.yaml": BLOCKER.replace("@SVC@", service.url),
                           "single.yaml": SINGLE, "pair.yaml": PAIR},
                workers=1, config={"scheduler.prefetch": 0})
    try:
        blocker = t.create_task("blocker", {})["task_id"]
        service.wait_requests("/hold", 1, timeout=10)

        # The node is full: neither new task's first step is claimed.
        older = t.create_task("single", {})["task_id"]
        under_way = t.create_task("pair", {})["task_id"]
        assert status_of(t, older, "only") == "pending"
        assert status_of(t, under_way, "first") == "pending"
        # An operator completes the pair's first step: its second is ready,
        # and became due after the older task's first step.
        r = t.patch("/v1/tasks/%d/steps/first" % under_way,
                    json={"action": "complete_manually", "reason": "test"})
        assert r.status == 200, (r.status, r.body)
        assert status_of(t, under_way, "second") == "pending"
    finally:
        gate.set()

    assert t.wait_task(blocker)["status"] == "complete"
    assert t.wait_task(under_way)["status"] == "complete"
    assert t.wait_task(older)["status"] == "complete"
    starts = {}
    for tid in (older, under_way):
        for row in harness.step_transitions(pg, t.db, tid):
            if row["to_state"] == "in_progress":
                starts[row["name"]] = row["id"]
    assert starts["second"] < starts["only"], starts
