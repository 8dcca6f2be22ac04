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
    """A context value of "." or ".." in the URL's path fails the step
    (render_error) without a call: encoded as "%2E%2E" it went out, and a
    server or proxy that normalizes (as RFC 3986 lets it) decodes that to
    a dot segment and serves another path.  In the query it is sent,
    encoded."""
    service.route("PUT", "/preferences", status=200, body={"wrong": True})
    service.route("PUT", "/users/7/preferences", status=200,
                  body={"ok": True})
    t = taskerd(templates={"prefs.yaml": """\
name: prefs
namespace_name: it
version: 1.0.0
step_templates:
  - name: put
    handler: http
    handler_config:
      method: PUT
      url: "%s/users/{{context.id}}/preferences?from={{context.from}}"
      body: { x: 1 }
""" % service.url})
    tid = t.create_task("prefs", {"id": "..", "from": "."},
                        namespace="it")["task_id"]
    task = t.wait_task(tid, timeout=20)
    step = task["steps"][0]
    assert task["status"] == "error", task
    assert step["last_error"]["code"] == "render_error", step
    assert "'..'" in step["last_error"]["message"], step
    assert service.requests == []
    tid = t.create_task("prefs", {"id": 7, "from": ".."},
                        namespace="it")["task_id"]
    assert t.wait_task(tid, timeout=20)["status"] == "complete"
    (req,) = service.requests_for("/users/7/preferences")
    assert req.raw_path == "/users/7/preferences?from=%2E%2E", req.raw_path


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


class RawServer:
    """A service that answers the i-th connection with answers[i] (bytes,
    sent as they are, then the connection is closed) - for answers no
    HTTP server library would send."""

    def __init__(self, answers):
        import socket
        import threading
        self.answers = list(answers)
        self.times = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import time
        for answer in self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.times.append(time.monotonic())
                try:
                    conn.sendall(answer)
                except OSError:
                    pass    # the client had enough (a body too large)

    def close(self):
        self.sock.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


def raw_template(name, url):
    return {"%s.yaml" % name: TEMPLATE.format(name=name, limit=2, url=url)}


def test_answers_cut_short_or_not_http(taskerd):
    """The status decides when it fails the step, whatever happened to the
    body: a 503 whose body is too large still waits its Retry-After and is
    retried; a 400 whose body is cut short is still permanent.  A peer
    that does not speak HTTP at all is a passing fault, like a refused
    connection, not a bad URL."""
    big = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"
           b"Content-Length: 9437184\r\n\r\n" + b"x" * 9437184)
    cut = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\n"
           b"short!")
    servers = {"busy": RawServer([big, OK]), "cut": RawServer([cut, OK]),
               "nothttp": RawServer([b"oops, not http\r\n", OK])}
    tmpl = {}
    for name, srv in servers.items():
        tmpl.update(raw_template(name, srv.url + "/x"))
    try:
        t = taskerd(templates=tmpl)
        ids = {name: t.create_task(name, {"id": 1}, namespace="it")["task_id"]
               for name in servers}
        busy = t.wait_task(ids["busy"], timeout=30)
        assert busy["status"] == "complete", busy
        assert busy["steps"][0]["attempts"] == 2, busy["steps"]
        gap = servers["busy"].times[1] - servers["busy"].times[0]
        assert gap >= 1.9, "retried after %.2f s, not Retry-After's 2" % gap

        cut_ = t.wait_task(ids["cut"], timeout=30)
        assert cut_["status"] == "error", cut_
        step = cut_["steps"][0]
        assert step["attempts"] == 1, step
        assert step["last_error"]["code"] == "http_400", step

        odd = t.wait_task(ids["nothttp"], timeout=30)
        assert odd["status"] == "complete", odd
        assert odd["steps"][0]["attempts"] == 2, odd["steps"]
        r = t.get("/v1/tasks/%d/steps/call/transitions" % ids["nothttp"])
        codes = [(x.get("metadata") or {}).get("error", {}).get("code")
                 for x in r.body["transitions"]]
        assert "bad_response" in codes, r.body
    finally:
        for srv in servers.values():
            srv.close()


HEADERS = """\
name: headers
namespace_name: it
version: 1.0.0
step_templates:
  - name: call
    handler: http
    handler_config:
      method: POST
      url: "%s/h"
      headers:
        If-Match: "{{context.etag?}}"
        X-Count: "{{context.n}}"
        X-Label: "n={{context.n}}{{context.suffix?}}"
"""


def test_headers_render_like_a_body(taskerd, service):
    """A header that is exactly a missing optional value is left out (it
    was sent empty, and "If-Match:" means something to a service); a
    number is its text; inside a longer value a missing optional is no
    text."""
    service.route("POST", "/h", status=200, body={"ok": True})
    t = taskerd(templates={"h.yaml": HEADERS % service.url})
    a = t.create_task("headers", {"n": 3}, namespace="it")["task_id"]
    b = t.create_task("headers", {"n": 4, "etag": "\"v7\"", "suffix": "!"},
                      namespace="it")["task_id"]
    for tid in (a, b):
        assert t.wait_task(tid)["status"] == "complete"
    by_count = {r.headers.get("X-Count"): r.headers
                for r in service.requests_for("/h")}
    assert "If-Match" not in by_count["3"], dict(by_count["3"])
    assert by_count["3"]["X-Label"] == "n=3"
    assert by_count["4"]["If-Match"] == "\"v7\""
    assert by_count["4"]["X-Label"] == "n=4!"


def test_answer_bodies_become_results(taskerd, service):
    """JSON is the results as it is, a UTF-8 byte order mark before it
    included (it was kept as text), an integer past 64 bits as a string of
    its digits (the same); text is {"body": ...}; no body (or only a mark
    and blanks) is {}."""
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    answers = {
        "bom": (200, b'\xef\xbb\xbf{"id": 7, "name": "Zo\xc3\xab"}', json_type),
        "text": (200, "accepted, thanks"),
        "empty": (204, None),
        "bomonly": (200, b"\xef\xbb\xbf\r\n", json_type),
        # An id past 64 bits: its digits as a string (it was all text).
        "bigid": (200, b'{"id": 123456789012345678901234567, "n": -1,'
                  b' "name": "alice"}', json_type),
    }
    for name, answer in answers.items():
        service.route("POST", "/" + name, lambda req, a=answer: a)
    t = taskerd(templates={
        "%s.yaml" % name: TEMPLATE.format(name=name, limit=1,
                                          url=service.url + "/" + name)
        for name in answers})
    ids = {name: t.create_task(name, {"id": 1}, namespace="it")["task_id"]
           for name in answers}
    results = {}
    for name, tid in ids.items():
        task = t.wait_task(tid, timeout=20)
        assert task["status"] == "complete", task
        results[name] = task["steps"][0]["results"]
    assert results == {"bom": {"id": 7, "name": "Zo\u00eb"},
                       "text": {"body": "accepted, thanks"},
                       "empty": {}, "bomonly": {},
                       "bigid": {"id": "123456789012345678901234567",
                                 "n": -1, "name": "alice"}}, results


MAPPED = """\
name: {name}
namespace_name: it
version: 1.0.0
step_templates:
  - name: call
    handler: http
    default_retry_limit: 1
    handler_config:
      method: GET
      url: "{url}"
      results: {{ user_id: id }}
"""


def test_a_results_map_on_an_answer_that_is_not_json_says_so(taskerd,
                                                             service):
    """The map finds no "id": in a JSON answer without one, that is all
    there is to say; in a text answer, "response has no 'id'" sent one
    looking for a misnamed field when the service did not send JSON."""
    service.route("GET", "/text", status=200, body="OK, created user 7")
    service.route("GET", "/json", status=200, body={"uid": 7})
    t = taskerd(templates={
        "%s.yaml" % n: MAPPED.format(name=n, url=service.url + "/" + n)
        for n in ("text", "json")})
    errors = {}
    for n in ("text", "json"):
        tid = t.create_task(n, {}, namespace="it")["task_id"]
        task = t.wait_task(tid, timeout=20)
        assert task["status"] == "error", task
        errors[n] = task["steps"][0]["last_error"]
        assert errors[n]["code"] == "extract_error", errors[n]
        assert "'id'" in errors[n]["message"], errors[n]
    assert "the answer is not JSON" in errors["text"]["message"], errors
    assert "not JSON" not in errors["json"]["message"], errors


def test_a_lookup_that_finds_no_record_yet_is_tried_again(taskerd, service):
    """A 409 says the user exists, and the lookup's search does not show
    it yet (an index behind): the step is tried again, and completes when
    the search finds it.  It failed for good, saying the lookup "found a
    different record"."""
    service.route("POST", "/users", status=409, body={"error": "exists"})
    searches = []

    def search(req):
        searches.append(req)
        users = [] if len(searches) == 1 else [{"id": 7, "email": "a@b"}]
        return 200, {"users": users}
    service.route("GET", "/users", search)
    t = taskerd(templates={"signup.yaml": """\
name: signup
namespace_name: it
version: 1.0.0
step_templates:
  - name: create
    handler: http
    default_retry_limit: 2
    backoff: { base: 100ms, max: 100ms, jitter: none }
    handler_config:
      method: POST
      url: "%s/users"
      body: { email: "{{context.email}}" }
      on_status:
        "409":
          lookup:
            url: "%s/users?email={{context.email}}"
            match: { users.0.email: "{{context.email}}" }
            results: { user_id: users.0.id }
""" % (service.url, service.url)})
    tid = t.create_task("signup", {"email": "a@b"}, namespace="it")["task_id"]
    task = t.wait_task(tid, timeout=20)
    step = task["steps"][0]
    assert task["status"] == "complete", task
    assert step["attempts"] == 2 and step["results"] == {"user_id": 7}, step
    assert t.log_lines("code=conflict_not_found"), t.log_tail(20)


def test_a_success_rule_may_map_its_own_results(taskerd, service):
    """A 404 on a DELETE is a success ("already gone"), and its body is
    not the 2xx's shape: the rule's own results map (empty here) stands
    for the step's, which would find no "id" in it.  Without one the
    step's map applied, and the step the rule calls a success failed for
    good (extract_error)."""
    service.route("DELETE", "/users/7", status=404, body={"error": "gone"})
    service.route("DELETE", "/users/8", status=200,
                  body={"id": 8, "deleted": True})
    t = taskerd(templates={"drop.yaml": """\
name: drop
namespace_name: it
version: 1.0.0
step_templates:
  - name: delete
    handler: http
    handler_config:
      method: DELETE
      url: "%s/users/{{context.id}}"
      results: { user_id: id }
      set: { outcome: deleted }
      on_status:
        "404": { outcome: success, results: {}, set: { outcome: gone } }
""" % service.url})
    for uid, want in ((7, {"outcome": "gone"}),
                      (8, {"user_id": 8, "outcome": "deleted"})):
        tid = t.create_task("drop", {"id": uid}, namespace="it")["task_id"]
        task = t.wait_task(tid, timeout=20)
        assert task["status"] == "complete", task
        assert task["steps"][0]["results"] == want, task["steps"]
