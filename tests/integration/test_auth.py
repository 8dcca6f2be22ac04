"""Bearer tokens: stored as SHA-256 hashes in the config, each with scopes;
health needs none; 401 without a valid token, 403 without the scope."""

import hashlib

TEMPLATE = """
name: guarded
step_templates:
  - name: a
    handler: noop
    handler_config: { fail: permanent }
"""

TOKENS = {"reader": ("r-0f6b2c", ["read"]),
          "writer": ("w-9d41aa", ["write"]),
          "operator": ("a-77e3c1", ["admin"])}


def bearer(name):
    return {"Authorization": "Bearer " + TOKENS[name][0]}


def test_tokens_and_scopes(taskerd):
    tokens = [{"name": n, "sha256": hashlib.sha256(t.encode()).hexdigest(),
               "scopes": scopes} for n, (t, scopes) in TOKENS.items()]
    # The harness waits on /health/ready, which needs no token.
    t = taskerd(templates={"guarded.yaml": TEMPLATE},
                config={"auth": {"tokens": tokens}})
    body = {"name": "guarded", "namespace": "default", "context": {}}

    r = t.get("/v1/tasks")
    assert r.status == 401
    assert r.body["error"]["code"] == "unauthorized"
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    r = t.get("/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    r = t.get("/v1/tasks", headers={"Authorization": "Basic abc"})
    assert r.status == 401
    assert t.get("/health/live").status == 200

    r = t.post("/v1/tasks", json=body, headers=bearer("reader"))
    assert r.status == 403
    assert r.body["error"]["code"] == "forbidden"
    assert t.pg.scalar(t.db, "select count(*) from tasks") == "0"

    r = t.post("/v1/tasks", json=body, headers=bearer("writer"))
    assert r.status == 201, r.body
    tid = r.body["task_id"]
    # The audit names the token that created it.
    hist = t.get("/v1/tasks/%d/transitions" % tid,
                 headers=bearer("reader")).body["transitions"]
    assert hist[0]["to_state"] == "pending" and \
        hist[0]["metadata"]["actor"] == "writer", hist
    assert t.get("/v1/tasks/%d" % tid, headers=bearer("reader")).status == 200
    assert t.get("/v1/tasks/%d" % tid, headers=bearer("writer")).status == 200
    assert t.get("/metrics", headers=bearer("reader")).status == 200
    assert t.get("/metrics").status == 401

    # Wait for the step to fail, then act on it: operator actions are admin.
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        task = t.get("/v1/tasks/%d" % tid, headers=bearer("reader")).body
        if task["status"] == "error":
            break
        time.sleep(0.05)
    assert task["status"] == "error"
    action = {"action": "resolve_manually", "reason": "checked by hand",
              "actor": "alice"}
    r = t.patch("/v1/tasks/%d/steps/a" % tid, json=action,
                headers=bearer("writer"))
    assert r.status == 403
    r = t.patch("/v1/tasks/%d/steps/a" % tid, json=action,
                headers=bearer("operator"))
    assert r.status == 200, r.body
    hist = t.get("/v1/tasks/%d/steps/a/transitions" % tid,
                 headers=bearer("reader")).body["transitions"]
    meta = hist[-1]["metadata"]
    # Who acted is the token; the body's actor is kept as the caller's word.
    assert meta["actor"] == "operator"
    assert meta["on_behalf_of"] == "alice"
    assert meta["reason"] == "checked by hand"


def test_an_open_api_on_loopback_draws_no_warning(taskerd):
    """With no tokens the API is open, which is fine on loopback: no
    warning there (on 127.0.0.1 or another loopback address).  The addresses
    that do draw it (0.0.0.0, ::, an interface's) are in test_netaddr.c:
    the tests listen on loopback only."""
    t = taskerd(templates={"guarded.yaml": TEMPLATE})
    assert t.get("/v1/tasks").status == 200
    assert t.log_lines('msg="listening" http=127.0.0.1:') != []
    assert t.log_lines("open to the network") == []
    port = t.port
    t.stop()
    t = taskerd(templates={"guarded.yaml": TEMPLATE},
                config={"http": {"listen": "127.0.0.2:%d" % port}})
    assert t.get("/v1/tasks").status == 200
    assert t.log_lines("open to the network") == []
