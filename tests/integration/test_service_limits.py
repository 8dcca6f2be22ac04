"""A service's limits hold steps back, and let them go as soon as they can.

- concurrency: at most N of a service's steps run at once.  A step held
  back starts when a running one finishes, not at the scheduler's slow
  backstop (seconds later).
- A claim handed back unstarted (here at shutdown) whose task was
  cancelled meanwhile is cancelled, not made ready to run later.
"""

import signal

import harness

NS = "limits"


def template(name, steps):
    return ("name: %s\nnamespace_name: %s\nversion: 1.0.0\nstep_templates:\n"
            % (name, NS)) + steps


def test_concurrency_slot_is_handed_over_at_once(taskerd, service):
    service.route("POST", "/slow", status=200, body={"ok": True}, delay=0.3)
    t = taskerd(templates={"calls.yaml": template("calls", """\
  - name: call
    handler: http
    dependent_system: svc
    handler_config:
      method: POST
      url: "%s/slow"
      body: { q: 1 }
""" % service.url)}, config={"services": {"svc": {"concurrency": 1}}},
        workers=4)
    ids = [t.create_task("calls", {"n": i}, namespace=NS)["task_id"]
           for i in range(3)]
    for tid in ids:
        assert t.wait_task(tid, timeout=30)["status"] == "complete"
    reqs = sorted(service.requests_for("/slow"), key=lambda r: r.t)
    assert len(reqs) == 3, reqs
    for a, b in zip(reqs, reqs[1:]):
        # One at a time ...
        assert b.t >= a.t_end - 0.01, "calls overlapped: %r" % reqs
        # ... and the next one starts right after (the backstop is 5 s).
        assert b.t - a.t_end < 1.5, "slot idle %.2f s" % (b.t - a.t_end)


def test_released_claim_of_a_cancelled_task_is_cancelled(taskerd, pg):
    t = taskerd(templates={"slow.yaml": template("slow", """\
  - name: work
    handler: noop
    handler_config: { sleep_ms: 1500 }
""")}, workers=1, config={"scheduler": {"prefetch": 8}})
    ids = [t.create_task("slow", {"n": i}, namespace=NS)["task_id"]
           for i in range(3)]

    def claimed():
        return pg.scalar(t.db, "select count(*) from steps where "
                         "status = 'enqueued'") == "2"
    harness.wait_until(claimed, 10, message="two steps claimed, queued")
    # A claimed step is its node's: the cancel leaves it be.
    r = t.delete("/v1/tasks/%d" % ids[2])
    assert r.status == 200, r.body
    t.proc.send_signal(signal.SIGTERM)
    assert t.proc.wait(15) == 0
    t._stopped = True
    t.stop()

    rows = {r["task_id"]: r for r in pg.json(
        t.db, "select task_id, status, attempts, lease_owner from steps")}
    cancelled = rows[ids[2]]
    assert cancelled["status"] == "cancelled" and \
        cancelled["attempts"] == 0 and cancelled["lease_owner"] is None, rows
    assert rows[ids[1]]["status"] == "pending", rows
    tr = pg.json(t.db, "select from_state, to_state, metadata from "
                 "step_transitions where task_id = %d" % ids[2])
    assert [(x["from_state"], x["to_state"]) for x in tr] == \
        [("pending", "cancelled")], tr
