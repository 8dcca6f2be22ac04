"""A service's limits hold steps back, and let them go as soon as they can.

- concurrency: at most N of a service's steps run at once.  A step held
  back starts when a running one finishes, not at the scheduler's slow
  backstop (seconds later).
"""

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

