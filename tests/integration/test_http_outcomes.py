"""How an http step reads a service's answer (DESIGN.md "HTTP outcome
classes"): 2xx success, 5xx/503 retryable (Retry-After honoured), the
service's own timeout (408) retryable, 4xx such as 422 permanent."""

import harness

TEMPLATE = """\
name: {name}
namespace_name: it
version: 1.0.0
step_templates:
  - name: call
    handler: http
    default_retry_limit: {limit}
    backoff: {{ base: 100ms, max: 200ms }}
    handler_config:
      method: POST
      url: "{url}"
      body: {{ id: "{{{{context.id}}}}" }}
"""


def templates(service):
    return {
        "%s.yaml" % name: TEMPLATE.format(name=name, limit=limit,
                                          url=service.url + "/" + name)
        for name, limit in (("flaky", 3), ("rejects", 3), ("broken", 2),
                            ("slow", 3))
    }


def test_retryable_permanent_and_exhausted(taskerd, service):
    calls = {"n": 0}

    def flaky(req):
        calls["n"] += 1
        if calls["n"] == 1:
            return 503, {"error": "busy"}, {"Retry-After": "1"}
        return 200, {"ok": True}
    service.route("POST", "/flaky", flaky)
    service.route("POST", "/rejects", status=422, body={"error": "invalid email"})
    service.route("POST", "/broken", status=500, body={"error": "boom"})
    slow = {"n": 0}

    def timing_out(req):
        slow["n"] += 1
        if slow["n"] == 1:
            return 408, {"error": "request timeout"}
        return 200, {"ok": "in time"}
    service.route("POST", "/slow", timing_out)

    t = taskerd(templates=templates(service))
    flaky_id = t.create_task("flaky", {"id": 1}, namespace="it")["task_id"]
    rejects_id = t.create_task("rejects", {"id": 2}, namespace="it")["task_id"]
    broken_id = t.create_task("broken", {"id": 3}, namespace="it")["task_id"]
    slow_id = t.create_task("slow", {"id": 4}, namespace="it")["task_id"]

    # 503 then 200: retried once, no sooner than Retry-After said.
    task = t.wait_task(flaky_id, timeout=20)
    step = task["steps"][0]
    assert (task["status"], step["status"], step["attempts"]) == ("complete", "complete", 2), task
    assert step["results"] == {"ok": True}
    first, second = service.requests_for("/flaky")
    assert first.json == {"id": 1}
    assert second.t - first.t_end >= 0.9, "retried %.3fs after Retry-After: 1" % (
        second.t - first.t_end)

    # 422: permanent at once, the answer's status in last_error.
    task = t.wait_task(rejects_id, timeout=20)
    step = task["steps"][0]
    assert (task["status"], step["status"], step["attempts"]) == ("error", "error", 1), task
    assert step["last_error"]["http_status"] == 422, step
    assert len(service.requests_for("/rejects")) == 1

    # 500 every time: retried until retry_limit (2 attempts), then error.
    task = t.wait_task(broken_id, timeout=20)
    step = task["steps"][0]
    assert (task["status"], step["status"], step["attempts"]) == ("error", "error", 2), task
    assert step["last_error"]["http_status"] == 500, step
    assert len(service.requests_for("/broken")) == 2

    # 408, the service's own timeout: retried like any other.
    task = t.wait_task(slow_id, timeout=20)
    step = task["steps"][0]
    assert (task["status"], step["attempts"]) == ("complete", 2), task
    assert step["results"] == {"ok": "in time"}


def test_context_value_cannot_climb_the_url_path(taskerd, service):
    """A context value of dots alone is not a dot segment: the call goes
    to the path the template names, with the value encoded in it."""
    service.route("PUT", "/users/%2E%2E/preferences", status=200,
                  body={"ok": True})
    service.route("PUT", "/preferences", status=200, body={"wrong": True})
    t = taskerd(templates={"prefs.yaml": """\
name: prefs
namespace_name: it
version: 1.0.0
step_templates:
  - name: put
    handler: http
    handler_config:
      method: PUT
      url: "%s/users/{{context.id}}/preferences"
      body: { x: 1 }
""" % service.url})
    tid = t.create_task("prefs", {"id": ".."}, namespace="it")["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "complete", task
    assert service.requests_for("/preferences") == []
    reqs = service.requests_for("/users/%2E%2E/preferences")
    assert len(reqs) == 1 and reqs[0].raw_path == \
        "/users/%2E%2E/preferences", reqs


def test_request_log_leaves_the_query_out(taskerd, service):
    """The debug log names the call without its query string, which may
    carry a secret (a context value here, an {{env.*}} in life)."""
    service.route("GET", "/q", status=200, body={"ok": True})
    t = taskerd(templates={"q.yaml": """\
name: q
namespace_name: it
version: 1.0.0
step_templates:
  - name: get
    handler: http
    handler_config:
      method: GET
      url: "%s/q?token={{context.secret}}"
""" % service.url})
    tid = t.create_task("q", {"secret": "s3cr3t-v4lue"}, namespace="it")
    assert t.wait_task(tid["task_id"])["status"] == "complete"
    assert service.requests_for("/q")[0].query == {"token": "s3cr3t-v4lue"}
    lines = t.log_lines(r'msg="http request"')
    assert lines and harness.logfmt(lines[0])["url"] == \
        service.url + "/q?...", lines
    assert "s3cr3t-v4lue" not in t.log()
