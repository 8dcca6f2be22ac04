"""Bad requests get a clear 4xx JSON error and leave no rows behind."""

import http.client
import json
import re
import socket

import pytest

import harness

TEMPLATE = """\
name: orders
namespace_name: it
version: 1.0.0
step_templates:
  - name: reserve
    handler: noop
  - name: charge
    handler: noop
    depends_on_step: reserve
"""

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(pg):
    factory = harness.TaskerdFactory(pg)
    try:
        yield factory(templates={"orders.yaml": TEMPLATE},
                      config={"http.max_body": "64KiB"})
    finally:
        factory.cleanup()


@pytest.fixture(autouse=True)
def _show_log_on_failure(request, server):
    request.node._taskerd_instances = [server]


def assert_no_rows(t):
    counts = harness.row_counts(t.pg, t.db)
    assert counts == dict.fromkeys(counts, 0), "rows were written: %r" % counts


def big_valid_json(size):
    body = {"name": "orders", "namespace": "it", "context": {"pad": ""}}
    body["context"]["pad"] = "x" * (size - len(json.dumps(body)))
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


GOOD = {"name": "orders", "namespace": "it", "context": {"id": 1}}

CASES = [
    # id, request kwargs, status, error code (None: any code)
    ("malformed_json", {"data": '{"name": "orders", "namespace": "it", "context": {'},
     400, "bad_json"),
    ("not_json", {"data": "name=orders&namespace=it"}, 400, "bad_json"),
    ("empty_body", {"data": ""}, 400, None),
    ("top_level_array", {"json": [GOOD]}, 400, None),
    ("unknown_template", {"json": dict(GOOD, name="no_such_template")},
     404, "unknown_template"),
    ("unknown_namespace", {"json": dict(GOOD, namespace="elsewhere")},
     404, "unknown_template"),
    ("unknown_version", {"json": dict(GOOD, version="9.9.9")}, 404, "unknown_template"),
    ("context_list", {"json": dict(GOOD, context=[1, 2])}, 400, "invalid_request"),
    ("context_string", {"json": dict(GOOD, context="id=1")}, 400, "invalid_request"),
    ("missing_name", {"json": {"namespace": "it", "context": {}}}, 400, "invalid_request"),
    ("name_not_string", {"json": dict(GOOD, name=42)}, 400, "invalid_request"),
    ("body_over_limit", {"data": big_valid_json(100 * 1024)}, 413, "body_too_large"),
]


@pytest.mark.parametrize("kwargs,status,code",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_task_request(server, kwargs, status, code):
    r = server.post("/v1/tasks", **kwargs)
    harness.assert_json_error(r, status, code)
    assert_no_rows(server)
    # The daemon is still fine afterwards.
    assert server.get("/health/live").status == 200


def test_chunked_body_over_limit(server):
    """The limit holds without a Content-Length too."""
    data = big_valid_json(100 * 1024)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        try:
            conn.request("POST", "/v1/tasks",
                         body=(data[i:i + 8192] for i in range(0, len(data), 8192)),
                         headers={"Content-Type": "application/json"},
                         encode_chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        raw = resp.read()
        r = harness.Response(resp.status, json.loads(raw) if raw.strip().startswith(b"{")
                             else raw.decode(errors="replace"), resp.headers)
    finally:
        conn.close()
    harness.assert_json_error(r, 413, "body_too_large")
    assert_no_rows(server)


def test_body_just_under_limit_is_read(server):
    """A body below max_body is parsed (here: an unknown template, so still
    nothing is written) rather than refused as too large."""
    body = {"name": "no_such_template", "namespace": "it", "context": {"pad": ""}}
    body["context"]["pad"] = "x" * (MAX_BODY - 1024 - len(json.dumps(body)))
    r = server.post("/v1/tasks", json=body)
    harness.assert_json_error(r, 404, "unknown_template")
    assert_no_rows(server)


@pytest.mark.parametrize("path,code", [
    ("/v1/tasks/999999", "not_found"),
    ("/v1/tasks/abc", None),
    ("/v1/no_such_route", None),
    ("/nothing/here", None),
])
def test_not_found_is_json(server, path, code):
    r = server.get(path)
    harness.assert_json_error(r, 404, code)
    assert_no_rows(server)


def test_valid_request_does_write(taskerd):
    """The control: the same template and shape, valid, creates the rows."""
    t = taskerd(templates={"orders.yaml": TEMPLATE})
    task = t.create_task("orders", {"id": 1}, namespace="it")
    t.wait_task(task["task_id"])
    counts = harness.row_counts(t.pg, t.db)
    assert counts["tasks"] == 1 and counts["steps"] == 2 and counts["step_edges"] == 1
    assert counts["task_transitions"] >= 1 and counts["step_transitions"] >= 2, counts


def raw_request(t, method, path, body=b""):
    """One request; (status, body bytes).  The body is checked here as the
    client would: strict UTF-8, then JSON."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=10)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw.decode("utf-8"))


@pytest.mark.parametrize("path", [
    "/v1/tasks?status=%FF",
    "/v1/tasks?namespace=%C3%28",
    "/v1/templates/%FF/x",
    "/v1/tasks/1/steps/%ED%A0%80",         # a UTF-16 surrogate
    "/elsewhere/%FE%FF",
    "/v1/tasks/1/steps/a%00b",              # NUL: used to name step "a"
    "/v1/tasks?name=a%00b",                 # used to filter on "a"
])
def test_url_not_utf8(server, path):
    """Bytes that do not decode as UTF-8 in the path or query, or a NUL
    that would cut a name short: a 400 that says so (they used to reach an
    error message, whose JSON encoding failed and took the daemon down;
    a NUL made "a%00b" the step "a")."""
    status, body = raw_request(server, "GET", path)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert "UTF-8" in body["error"]["message"]
    assert server.get("/health/live").status == 200
    assert server.running


@pytest.mark.parametrize("field", ["name", "unknown"])
def test_error_message_cut_inside_a_character(server, field):
    """An error message quoting the request is cut at 511 bytes, which may
    fall inside a character: the answer is still valid UTF-8 and JSON."""
    for pad in range(4):        # one of these lands the cut mid-character
        value = "a" * pad + "\u00e9" * 300
        body = {"name": "orders", "namespace": "it"}
        if field == "name":
            body["name"] = value
        else:
            body[value] = 1
        status, answer = raw_request(server, "POST", "/v1/tasks",
                                     json.dumps(body).encode())
        assert status in (400, 404), answer
        assert answer["error"]["message"].startswith(
            "unknown field" if field == "unknown" else "no template")
    assert server.running
    assert_no_rows(server)


def test_empty_body_says_so(server):
    r = server.post("/v1/tasks", data="")
    err = harness.assert_json_error(r, 400, "bad_json")
    assert "empty" in err["message"], err


def test_long_idempotency_key(taskerd):
    """A key too long for the unique index is refused on its own; it does
    not fail (or slow) the batch it would have joined."""
    t = taskerd(templates={"orders.yaml": TEMPLATE})
    r = t.post("/v1/tasks", json=dict(GOOD, idempotency_key="k" * 256))
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert "255 bytes" in err["message"], err
    assert_no_rows(t)
    r = t.post("/v1/tasks", json=dict(GOOD, idempotency_key="k" * 255))
    assert r.status == 201, r.body
    assert "task batch failed" not in t.log()


def test_head_is_get_without_a_body(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("HEAD", "/health/live")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("application/json")
        assert resp.read() == b""
        conn.request("HEAD", "/v1/tasks/999999")
        resp = conn.getresponse()
        assert resp.status == 404
        assert resp.read() == b""
    finally:
        conn.close()


def send_raw(t, data):
    """Send bytes as they are; everything the server answers until it
    closes the connection."""
    sock = socket.create_connection((t.host, t.port), timeout=10)
    try:
        sock.sendall(data)
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        sock.close()


def test_head_leaves_a_kept_alive_connection_usable(server):
    """The bytes after a HEAD's answer are the next answer's: no body (it
    was written anyway, without a length, and a client read it as the
    start of its next answer), and the length a GET's body has."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/v1/tasks/999999")
        get_len = len(conn.getresponse().read())
    finally:
        conn.close()
    data = send_raw(server, b"HEAD /v1/tasks/999999 HTTP/1.1\r\nHost: x\r\n"
                    b"\r\nGET /health/live HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404"), data
    assert b"Content-Length: %d" % get_len in head, head
    assert rest.startswith(b"HTTP/1.1 200"), data


@pytest.mark.parametrize("method", ["HEAD", "TRACE"])
def test_a_body_after_head_or_trace_is_no_request(server, method):
    """libevent reads no body after HEAD or TRACE: one sent with them
    ends the connection with the answer, not taken for the next request
    (a proxy reusing connections would have passed it on)."""
    data = send_raw(server, b"%s /health/live HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 38\r\n\r\nGET /health/live HTTP/1.1"
                    b"\r\nHost: x\r\n\r\n" % method.encode())
    head = data.partition(b"\r\n\r\n")[0]
    assert b"Connection: close" in head, data
    assert data.count(b"HTTP/1.1 ") == 1, data


@pytest.mark.parametrize("query", [
    "stauts=error",                 # misspelt: would list every task
    "limit=1&limit=abc",            # which one?
    "status=error&status=complete",
])
def test_list_query_unknown_or_repeated(server, query):
    status, body = raw_request(server, "GET", "/v1/tasks?" + query)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert "stauts" in body["error"]["message"] or \
        "twice" in body["error"]["message"], body


@pytest.mark.parametrize("method,path,status,allow", [
    ("OPTIONS", "/v1/tasks", 405, "GET, HEAD, POST"),
    ("TRACE", "/health/live", 405, "GET, HEAD"),
    ("PUT", "/v1/tasks/1", 405, "GET, HEAD, DELETE"),
    ("POST", "/v1/tasks/1/steps/a", 405, "GET, HEAD, PATCH"),
    ("DELETE", "/v1/nodes", 405, "GET, HEAD"),
    ("OPTIONS", "/elsewhere", 404, None),
])
def test_other_methods_get_json(server, method, path, status, allow):
    """Methods a resource does not take answer a JSON 405 (OPTIONS and
    TRACE used to get libevent's HTML 501) that says which it takes."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == status, body
    assert body["error"]["code"] == ("method_not_allowed" if status == 405
                                     else "not_found"), body
    assert resp.getheader("Allow") == allow


@pytest.mark.parametrize("method", ["PROPFIND", "get", "BREW"])
def test_unknown_methods_get_json(server, method):
    """A method libevent does not know (or a known one in lower case:
    methods are case-sensitive) answers a JSON 501, not libevent's HTML.
    The body it came with is not read, so the connection ends with the
    answer rather than read that body as the next request."""
    data = send_raw(server, b"%s /v1/tasks HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 17\r\n\r\nGET /v1/tasks HTTP"
                    b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                    % method.encode())
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501"), data
    assert b"Content-Type: application/json" in head, head
    assert b"Connection: close" in head, head
    err = json.loads(body)["error"]
    assert err["code"] == "not_implemented", err
    # Nothing after it: neither the body as a request nor the next one.
    assert data.count(b"HTTP/1.1 ") == 1, data


def test_connect_gets_a_json_501_with_its_length(server):
    """CONNECT (a client taking the API for a proxy) answers a JSON 501
    with its length, and the next request on the connection is answered
    after it.  The answer had no length, and the connection stays open
    after a CONNECT: the client waited for the body's end until its
    timeout."""
    data = send_raw(server, b"CONNECT localhost:80 HTTP/1.1\r\nHost: x\r\n"
                    b"\r\nGET /health/live HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501"), data
    length = re.search(rb"Content-Length: (\d+)", head)
    assert length, data
    body, rest = rest[:int(length[1])], rest[int(length[1]):]
    err = json.loads(body)["error"]
    assert err["code"] == "not_implemented" and "CONNECT" in err["message"]
    assert rest.startswith(b"HTTP/1.1 200") and rest.endswith(
        b'{"status":"ok"}\n'), data

