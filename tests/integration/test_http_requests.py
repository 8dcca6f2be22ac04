"""What an http step puts on the wire: the same bytes on every attempt of
one Idempotency-Key, headers as they render, Content-Length: 0 where a
method defines a body and there is none, and, when it fails, what the
operator needs to see (a redirect's target; a lookup that got no answer
counting against its service)."""

import harness

NS = "wire"


def template(name, steps):
    return {"%s.yaml" % name: "name: %s\nnamespace_name: %s\nversion: 1.0.0\n"
            "step_templates:\n%s" % (name, NS, steps)}


def call(name, method, url, extra="", limit=1):
    return """\
  - name: %s
    handler: http
    default_retry_limit: %d
    backoff: { base: 100ms, max: 100ms }
    handler_config:
      method: %s
      url: "%s"
%s""" % (name, limit, method, url, extra)


def run(t, name, context=None):
    tid = t.create_task(name, context or {}, namespace=NS)["task_id"]
    return harness.steps_by_name(t.wait_task(tid, timeout=30))


def test_a_retry_sends_the_same_bytes(taskerd, service):
    """The first attempt of a child gets its parent's results from the
    worker that made them, a retry from the database, whose jsonb orders
    keys its own way; under one Idempotency-Key both send the same body
    (a service that fingerprints it would refuse the retry)."""
    service.route("POST", "/parent", status=200,
                  body=b'{"zeta": 1, "alpha": {"yy": 2, "x": 1}, "f": 1.5}')
    answers = iter([(503, {"error": "busy"}), (200, {"ok": 1})])
    service.route("POST", "/child", lambda req: next(answers))
    t = taskerd(templates=template("fam", call(
        "parent", "POST", service.url + "/parent") + call(
        "child", "POST", service.url + "/child", limit=3,
        extra='      body: { p: "{{steps.parent.results}}", '
              'b: "{{context.b}}" }\n') + "    depends_on_step: parent\n"))
    steps = run(t, "fam", {"b": {"z": 1, "a": [{"d": 1, "c": 2}]}})
    assert steps["child"]["status"] == "complete", steps["child"]
    reqs = service.requests_for("/child")
    assert len(reqs) == 2, [r.body for r in reqs]
    assert reqs[0].headers["Idempotency-Key"] == \
        reqs[1].headers["Idempotency-Key"]
    assert reqs[0].body == reqs[1].body == \
        b'{"b":{"a":[{"c":2,"d":1}],"z":1},' \
        b'"p":{"alpha":{"x":1,"yy":2},"f":1.5,"zeta":1}}', reqs[0].body


def test_headers_are_judged_as_rendered(taskerd, service):
    """An optional placeholder that renders to nothing leaves the header
    out, and taskerd's default takes its place (a JSON body went out as a
    form); a value with a control character fails the step before any
    request."""
    service.route("POST", "/p", status=200, body={"ok": 1})
    headers = ('      body: { id: 1 }\n      headers:\n'
               '        Content-Type: "{{context.ct?}}"\n'
               '        Accept: "{{context.accept?}}"\n'
               '        X-Note: "{{context.note?}}"\n')
    t = taskerd(templates=template("h", call("only", "POST",
                                             service.url + "/p",
                                             extra=headers)))
    assert run(t, "h")["only"]["status"] == "complete"
    r = service.requests_for("/p")[-1]
    assert r.headers["Content-Type"] == "application/json", dict(r.headers)
    assert r.headers["Accept"] == "application/json", dict(r.headers)
    assert "X-Note" not in r.headers

    assert run(t, "h", {"ct": "application/merge-patch+json",
                        "accept": "text/csv"})["only"]["status"] == "complete"
    r = service.requests_for("/p")[-1]
    assert (r.headers["Content-Type"], r.headers["Accept"]) == \
        ("application/merge-patch+json", "text/csv"), dict(r.headers)

    # Blanks only are an empty value, sent as such: curl took "Name:   "
    # for "remove the header" (and its own Accept with it).
    assert run(t, "h", {"note": "  ", "accept": "\t"})["only"]["status"] \
        == "complete"
    r = service.requests_for("/p")[-1]
    assert (r.headers.get("X-Note"), r.headers.get("Accept")) == ("", ""), \
        dict(r.headers)

    sent = len(service.requests)
    for note in ("a\x0bb", "a\x7fb"):
        step = run(t, "h", {"note": note})["only"]
        assert step["status"] == "error", step
        err = step["last_error"]
        assert err["code"] == "render_error" and \
            "header X-Note: rendered value contains a control character" \
            in err["message"], err
    assert len(service.requests) == sent


def test_methods_without_a_body(taskerd, service):
    """POST, PUT and PATCH define a body: without one they say
    Content-Length: 0 (strict front ends answer 411 otherwise), and no
    form Content-Type; GET and DELETE say neither."""
    steps = ""
    for m in ("POST", "PUT", "PATCH", "DELETE", "GET"):
        service.route(m, "/r", status=200, body={"ok": 1})
        steps += call(m.lower(), m, service.url + "/r")
    t = taskerd(templates=template("bodiless", steps))
    assert all(s["status"] == "complete"
               for s in run(t, "bodiless").values())
    seen = {r.method: r for r in service.requests_for("/r")}
    assert sorted(seen) == ["DELETE", "GET", "PATCH", "POST", "PUT"]
    for m in ("POST", "PUT", "PATCH"):
        assert seen[m].headers["Content-Length"] == "0", (m, seen[m].headers)
    for m, r in seen.items():
        assert "Content-Type" not in r.headers, (m, dict(r.headers))
        assert r.body == b""
    for m in ("GET", "DELETE"):
        assert "Content-Length" not in seen[m].headers, m


def test_a_body_that_is_a_missing_optional_value_is_none(taskerd, service):
    """body: "{{context.payload?}}" without a payload sends no body, as a
    null one does: POST says Content-Length: 0, GET nothing, and neither a
    Content-Type.  It sent the four bytes "null" as JSON, which strict
    services refused (a 400 that failed the step for good)."""
    steps = ""
    for m in ("POST", "GET"):
        service.route(m, "/o", status=200, body={"ok": 1})
        steps += call(m.lower(), m, service.url + "/o",
                      extra='      body: "{{context.payload?}}"\n')
    t = taskerd(templates=template("optional_body", steps))
    assert all(s["status"] == "complete"
               for s in run(t, "optional_body").values())
    seen = {r.method: r for r in service.requests_for("/o")}
    assert sorted(seen) == ["GET", "POST"], seen
    for m, r in seen.items():
        assert r.body == b"" and "Content-Type" not in r.headers, \
            (m, r.body, dict(r.headers))
    assert seen["POST"].headers["Content-Length"] == "0"
    assert "Content-Length" not in seen["GET"].headers
    # A payload given is sent.
    tid = t.create_task("optional_body", {"payload": {"a": 1}},
                        namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert service.requests_for("/o")[-1].body == b'{"a":1}'


def test_a_redirect_says_where_to(taskerd, service):
    """Redirects are not followed: the error says where the service sent
    the request, without what may carry a secret: the user and password
    (from the request's URL), the query and the fragment."""
    service.route("POST", "/old", status=308, body={"moved": True},
                  headers={"Location": "/v2/new?token=s3cret#s3cret"})
    url = service.url.replace("http://", "http://ops:pa%40ss@") + "/old"
    t = taskerd(templates=template("r", call("only", "POST", url)))
    step = run(t, "r")["only"]
    assert step["status"] == "error", step
    msg = step["last_error"]["message"]
    assert "HTTP 308 from POST, to %s/v2/new?...:" % service.url in msg, msg
    assert "s3cret" not in msg and "ops:" not in msg, msg
    assert "pa%40ss" not in t.log() and "s3cret" not in t.log()


def test_a_lookup_without_an_answer_counts_against_the_service(taskerd,
                                                                service):
    """A 409 says the service is up; a lookup after it that cannot even
    connect says it is down, as any refused connection does: the breaker
    counts it (it kept the 409's status and counted the service up)."""
    service.route("POST", "/users", status=409, body={"error": "exists"})
    lookup = ('      body: { id: 1 }\n      on_status:\n        "409":\n'
              '          lookup:\n'
              '            url: "http://127.0.0.1:1/users"\n')
    t = taskerd(templates=template("lk", call("only", "POST", "/users",
                                              extra=lookup) +
                                   "    dependent_system: users\n"),
                config={"services": {"users": {
                    "base_url": service.url,
                    "breaker": {"failures": 1, "cooldown": "1h"}}}})
    step = run(t, "lk")["only"]
    assert step["status"] == "error", step
    assert step["last_error"]["code"] == "connect_error", step["last_error"]
    svc = {s["name"]: s for s in t.get("/v1/services").body["services"]}
    assert svc["users"]["breaker"] == "open", svc["users"]
