"""What a service's circuit breaker counts.

A 5xx, a refused connection or a deadline says the service is unwell; an
answer below 500 says it is up.  A step that failed without reaching it -
its URL could not be rendered, its worker was killed, the node lost its
lease - says nothing: it neither opens the breaker nor, as the half-open
probe, closes it (a flood of steps would follow onto a service still
down).  A failed probe grants its step another attempt, but not a step
that must not run twice (default_retryable: false).
"""

import os
import signal

import harness

NS = "breaker"


def template(name, path, retryable=True, limit=1):
    return """\
name: %s
namespace_name: %s
version: 1.0.0
step_templates:
  - name: call
    handler: http
    dependent_system: svc
    default_retryable: %s
    default_retry_limit: %d
    backoff: { base: 100ms, max: 100ms, jitter: none }
    handler_config: { method: POST, url: "%s" }
""" % (name, NS, "true" if retryable else "false", limit, path)


def services(service, failures):
    return {"services": {"svc": {"base_url": service.url, "timeout": "10s",
                                 "breaker": {"failures": failures,
                                             "cooldown": "1s"}}}}


def breaker(t):
    r = t.get("/v1/services")
    assert r.status == 200, r.body
    return {s["name"]: s for s in r.body["services"]}["svc"]


def open_it(t, service, failures):
    """Open the breaker with steps that fail for good (nothing left to
    probe with but what the test creates next)."""
    ids = [t.create_task("down", {}, namespace=NS)["task_id"]
           for _ in range(failures)]
    for tid in ids:
        assert t.wait_task(tid)["status"] == "error"
    assert breaker(t)["breaker"] == "open", breaker(t)


def test_a_probe_that_never_reached_the_service_leaves_it_half_open(
        taskerd, service):
    service.route("POST", "/down", status=500, body={"e": 1})
    service.route("POST", "/up/a", status=200, body={"ok": True})
    t = taskerd(templates={"down.yaml": template("down", "/down"),
                           "up.yaml": template("up", "/up/{{context.p}}")},
                config=services(service, 2))
    open_it(t, service, 2)
    # Its URL cannot be rendered: it fails without a call, as the probe.
    tid = t.create_task("up", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid, timeout=10)
    assert done["steps"][0]["last_error"]["code"] == "render_error", done
    assert t.log_lines("circuit half-open"), t.log_tail(20)
    assert breaker(t)["breaker"] == "half_open", breaker(t)
    assert not t.log_lines("circuit closed"), t.log_tail(20)
    # A step that reaches it decides.
    tid = t.create_task("up", {"p": "a"}, namespace=NS)["task_id"]
    assert t.wait_task(tid, timeout=10)["status"] == "complete"
    assert breaker(t)["breaker"] == "closed", breaker(t)


def test_a_killed_worker_does_not_count_against_the_service(taskerd,
                                                            service):
    service.route("POST", "/slow", status=200, body={"ok": True}, delay=3)
    t = taskerd(templates={"slow.yaml": template("slow", "/slow", limit=2)},
                config=services(service, 1))
    tid = t.create_task("slow", {}, namespace=NS)["task_id"]
    (call,) = service.wait_requests("/slow", 1, timeout=10)
    worker = [w for w in t.workers_pids()
              if "busy" == {x["pid"]: x["state"]
                            for x in t.workers()}.get(w)]
    assert len(worker) == 1, (worker, t.workers())
    os.kill(worker[0], signal.SIGKILL)
    harness.wait_until(lambda: t.log_lines('msg="worker died"'), 10,
                       message="the worker's death noticed")
    svc = breaker(t)
    assert svc["breaker"] == "closed" and svc["consecutive_failures"] == 0, \
        svc
    assert t.wait_task(tid, timeout=20)["status"] == "complete"
    assert not t.log_lines("circuit opened"), t.log_tail(20)


def test_a_failed_probe_does_not_run_a_step_that_must_not_run_twice(
        taskerd, service):
    service.route("POST", "/down", status=500, body={"e": 1})
    service.route("POST", "/once", status=500, body={"e": 2})
    t = taskerd(templates={
        "down.yaml": template("down", "/down"),
        "once.yaml": template("once", "/once", retryable=False, limit=1)},
        config=services(service, 1))
    open_it(t, service, 1)
    tid = t.create_task("once", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid, timeout=10)
    assert done["status"] == "error", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert len(service.requests_for("/once")) == 1


def test_an_answer_cut_short_counts_against_the_service(taskerd):
    """A 200 whose body never all came (the service died mid-answer) is a
    failed call: it used to count as an answer, the service as up, and a
    service that kept dying mid-answer never opened its breaker."""
    from test_http_outcomes import RawServer
    cut = (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
           b'{"ok": tr')
    srv = RawServer([cut, cut])
    try:
        t = taskerd(templates={"down.yaml": template("down", "/x")},
                    config={"services": {"svc": {
                        "base_url": srv.url, "timeout": "10s",
                        "breaker": {"failures": 2, "cooldown": "60s"}}}})
        for _ in range(2):
            tid = t.create_task("down", {}, namespace=NS)["task_id"]
            step = t.wait_task(tid)["steps"][0]
            assert step["status"] == "error", step
            assert step["last_error"]["code"] in ("curl_18", "curl_56"), \
                step["last_error"]
        assert breaker(t)["breaker"] == "open", breaker(t)
        assert t.log_lines("circuit opened"), t.log_tail(20)
    finally:
        srv.close()


def test_a_step_the_service_always_fails_does_not_keep_it_open(taskerd,
                                                               service):
    """One record the service answers 500 for whatever the service's
    health, and good steps queued behind the open breaker.  A failed probe
    sits out the next half-open, so a good step probes, closes the
    breaker, and all of them run; the bad step spends its attempts and
    ends in error.  It was the probe at every half-open, as the oldest
    retry, and failed each time without spending an attempt: the breaker
    stayed open for ever, and no good step ran."""
    service.route("POST", "/bad", status=500, body={"e": "bad record"})
    service.route("POST", "/good", status=200, body={"ok": True})
    t = taskerd(templates={"bad.yaml": template("bad", "/bad", limit=3),
                           "good.yaml": template("good", "/good", limit=3)},
                config={"services": {"svc": {
                    "base_url": service.url, "timeout": "10s",
                    "breaker": {"failures": 2, "cooldown": "500ms"}}}})
    bad = t.create_task("bad", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: breaker(t)["breaker"] == "open", 10,
                       message="the breaker opened by the bad step")
    goods = [t.create_task("good", {}, namespace=NS)["task_id"]
             for _ in range(3)]
    for tid in goods:
        assert t.wait_task(tid, timeout=15)["status"] == "complete"
    done = t.wait_task(bad, timeout=15)
    assert done["status"] == "error", done
    # Three attempts of its own, and at most one the breaker gave back.
    assert done["steps"][0]["attempts"] in (3, 4), done["steps"]


def test_deadlines_of_steps_that_must_not_run_twice_count(taskerd, service):
    """A service that stops answering, called by steps that must not run
    twice: each is stopped at its deadline, and two of them open the
    breaker.  Such a deadline was recorded as a permanent failure, which
    said nothing of the service, and the breaker never opened."""
    service.route("POST", "/hang", status=200, body={"ok": True}, delay=5)
    t = taskerd(templates={"hang.yaml": template(
        "hang", "/hang", retryable=False).replace(
        "    backoff:", "    timeout: 1s\n    backoff:")},
        config=services(service, 2))
    ids = [t.create_task("hang", {}, namespace=NS)["task_id"]
           for _ in range(2)]
    for tid in ids:
        done = t.wait_task(tid, timeout=15)
        assert done["steps"][0]["last_error"]["code"] == "timeout", done
    svc = breaker(t)
    assert svc["breaker"] == "open" and svc["failures"] == 2, svc


def test_a_task_held_by_an_open_breaker_says_so(taskerd, service):
    """A step whose service's breaker is open waits, spending no attempts,
    and read as 'pending' with no error: the task now says what it waits
    for, through the API (/v1 and the template's status route) and
    tasker-ctl."""
    from test_ctl import ctl, ok
    service.route("POST", "/down", status=500, body={"e": 1})
    service.route("POST", "/up/a", status=200, body={"ok": True})
    cfg = services(service, 1)
    cfg["services"]["svc"]["breaker"]["cooldown"] = "1m"
    up = template("up", "/up/{{context.p}}").replace(
        "step_templates:", 'routes:\n  status: { path: "/up/status/{task_id}" }'
        '\nstep_templates:')
    t = taskerd(templates={"down.yaml": template("down", "/down"),
                           "up.yaml": up},
                config=cfg)
    tid = t.create_task("up", {"p": "a"}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    open_it(t, service, 1)
    tid = t.create_task("up", {"p": "a"}, namespace=NS)["task_id"]
    task = t.task(tid)
    assert task["status"] == "pending" and task["waiting"] == {
        "code": "breaker_open", "service": "svc",
        "message": "the breaker of service svc is open on this node: step "
        "call waits, spending no attempts, until a call to the service "
        "succeeds"}, task
    assert task["steps"][0]["status"] == "pending" and \
        task["steps"][0]["attempts"] == 0, task
    r = t.get("/up/status/%s" % tid)
    assert r.status == 200 and r.body["status"] == "pending" and \
        r.body["waiting"] == task["waiting"], (r.status, r.body)
    out = ok(ctl("task", "show", tid, url=t.url))
    assert "the breaker of service svc is open" in out, out
    # The first task's call only: the second waits, uncalled.
    assert len(service.requests_for("/up/a")) == 1, service.requests
