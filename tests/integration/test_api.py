"""The HTTP API as a client sees it: tasks, listing, filters, pagination,
templates, workers, health."""

import datetime
import urllib.parse

import harness

CHAIN = """\
name: api_chain
namespace_name: it
version: 1.0.0
description: three noop steps
step_templates:
  - name: one
    handler: noop
    handler_config: { results: { x: 1 } }
  - name: two
    handler: noop
    depends_on_step: one
    handler_config: { sleep_ms: 10, results: { y: "two" } }
  - name: three
    handler: noop
    depends_on_steps: [one, two]
    handler_config: { results: { z: [1, 2] } }
"""

FAILING = """\
name: api_failing
namespace_name: it
version: 1.0.0
step_templates:
  - name: doomed
    handler: noop
    default_retry_limit: 3
    handler_config: { fail: permanent }
"""

TASK_KEYS = {"task_id", "namespace", "name", "version", "status", "context",
             "initiator", "source_system", "reason", "tags", "idempotency_key",
             "created_at", "updated_at", "completed_at"}
STEP_KEYS = {"name", "status", "handler", "depends_on", "attempts", "retry_limit",
             "retryable", "next_attempt_at", "started_at", "completed_at",
             "results", "last_error"}
TASK_STATES = {"pending", "in_progress", "complete", "error", "cancelled",
               "resolved_manually"}


def iso(ts):
    """Parse an ISO-8601 timestamp (with 'Z' or an offset)."""
    assert isinstance(ts, str), ts
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def list_tasks(t, **params):
    q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    r = t.get("/v1/tasks" + ("?" + q if q else ""))
    assert r.status == 200, (params, r.status, r.body)
    assert set(r.body) >= {"tasks", "next_cursor"}, r.body
    assert r.body["next_cursor"] is None or isinstance(r.body["next_cursor"], str)
    return r.body


def test_create_get_and_list(taskerd, pg):
    t = taskerd(templates={"chain.yaml": CHAIN, "failing.yaml": FAILING})
    r = t.post("/v1/tasks", json={
        "name": "api_chain", "namespace": "it", "context": {"order_id": 7},
        "initiator": "pytest", "source_system": "tests", "reason": "api test",
        "tags": ["a", "b"]})
    assert r.status == 201, (r.status, r.body)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    created = r.body
    assert TASK_KEYS <= set(created), sorted(TASK_KEYS - set(created))
    tid = created["task_id"]
    assert isinstance(tid, int) and tid > 0
    assert (created["name"], created["namespace"], created["version"]) == \
        ("api_chain", "it", "1.0.0")
    assert created["context"] == {"order_id": 7}
    assert (created["initiator"], created["source_system"], created["reason"]) == \
        ("pytest", "tests", "api test")
    assert created["tags"] == ["a", "b"]
    assert created["status"] in TASK_STATES
    iso(created["created_at"])
    assert sorted(s["name"] for s in created["steps"]) == ["one", "three", "two"]
    deps = {s["name"]: sorted(s["depends_on"]) for s in created["steps"]}
    assert deps == {"one": [], "two": ["one"], "three": ["one", "two"]}

    task = t.wait_task(tid)
    assert task["status"] == "complete", task
    assert iso(task["completed_at"]) >= iso(task["created_at"])
    steps = harness.steps_by_name(task)
    for s in steps.values():
        assert STEP_KEYS <= set(s), sorted(STEP_KEYS - set(s))
        assert (s["status"], s["attempts"], s["handler"], s["last_error"]) == \
            ("complete", 1, "noop", None), s
        assert s["retry_limit"] >= 1
        iso(s["started_at"])
        iso(s["completed_at"])
    assert steps["one"]["results"] == {"x": 1}
    assert steps["two"]["results"] == {"y": "two"}
    assert steps["three"]["results"] == {"z": [1, 2]}

    # The durable record agrees.
    row = pg.json(t.db, "select status, context from tasks where id = %d" % tid)
    assert row == [{"status": "complete", "context": {"order_id": 7}}]
    ttrans = pg.json(t.db, "select from_state, to_state from task_transitions "
                           "where task_id = %d order by id" % tid)
    assert ttrans and ttrans[-1]["to_state"] == "complete", ttrans

    # A task that fails permanently: no retries, the error is visible.
    failed = t.create_task("api_failing", {"order_id": 8}, namespace="it")
    ftask = t.wait_task(failed["task_id"])
    assert ftask["status"] == "error", ftask
    # Its one step failed in the batch that started the task: the task
    # went through in_progress all the same, as the step did.
    ttrans = pg.json(t.db, "select from_state, to_state from task_transitions "
                           "where task_id = %d order by id" % failed["task_id"])
    assert [(x["from_state"], x["to_state"]) for x in ttrans] == \
        [(None, "pending"), ("pending", "in_progress"),
         ("in_progress", "error")], ttrans
    doomed = ftask["steps"][0]
    assert (doomed["status"], doomed["attempts"]) == ("error", 1), doomed
    err = doomed["last_error"]
    assert isinstance(err, dict) and err.get("code") and err.get("message"), doomed

    # Listing: summaries without steps, filters.
    everything = list_tasks(t)["tasks"]
    assert sorted(x["task_id"] for x in everything) == sorted([tid, failed["task_id"]])
    for x in everything:
        assert "steps" not in x, x
        assert TASK_KEYS <= set(x)
    ids = lambda **p: sorted(x["task_id"] for x in list_tasks(t, **p)["tasks"])
    assert ids(status="complete") == [tid]
    assert ids(status="error") == [failed["task_id"]]
    assert ids(status="pending") == []
    assert ids(name="api_failing") == [failed["task_id"]]
    assert ids(name="api_chain", status="complete") == [tid]
    assert ids(namespace="it") == sorted([tid, failed["task_id"]])
    assert ids(namespace="elsewhere") == []

    # GET one task again: same steps as when it finished.
    assert t.task(tid)["steps"] == task["steps"]


def test_pagination_returns_every_task_once(taskerd):
    t = taskerd(templates={"chain.yaml": CHAIN})
    created = [t.create_task("api_chain", {"i": i}, namespace="it")["task_id"]
               for i in range(7)]
    assert len(set(created)) == 7
    seen, pages, cursor = [], 0, None
    while True:
        page = list_tasks(t, limit=3, cursor=cursor)
        pages += 1
        assert len(page["tasks"]) <= 3, page
        seen += [x["task_id"] for x in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end: %r" % seen
    assert sorted(seen) == sorted(created), "duplicates or gaps: %r" % seen
    assert pages in (3, 4), pages
    # Filters and pagination together.
    for x in created:
        t.wait_task(x)
    seen, cursor = [], None
    for _ in range(10):
        page = list_tasks(t, limit=2, cursor=cursor, status="complete", name="api_chain")
        seen += [x["task_id"] for x in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)


def test_filtered_listing_merges_templates_and_versions(taskerd):
    """By namespace or name, the tasks of every matching template (each
    version its own) come newest first, each once, page after page, with
    the status filter on top."""
    def tmpl(ns, name, version, fail=False):
        return ("name: %s\nnamespace_name: %s\nversion: %s\n"
                "step_templates:\n  - name: only\n    handler: noop\n%s"
                % (name, ns, version, "    handler_config: { fail: "
                   "permanent }\n" if fail else ""))
    t = taskerd(templates={"x1.yaml": tmpl("a", "x", "1.0.0"),
                           "x2.yaml": tmpl("a", "x", "2.0.0", fail=True),
                           "y.yaml": tmpl("a", "y", "1.0.0"),
                           "z.yaml": tmpl("b", "x", "1.0.0")})
    made = []
    for i in range(24):
        ns, name, version = [("a", "x", "1.0.0"), ("a", "x", "2.0.0"),
                             ("a", "y", "1.0.0"), ("b", "x", "1.0.0")][i % 4]
        r = t.post("/v1/tasks", json={"name": name, "namespace": ns,
                                      "version": version, "context": {}})
        assert r.status == 201, r.body
        made.append((r.body["task_id"], ns, name, version))
    for tid, *_ in made:
        t.wait_task(tid)

    def pages(**filters):
        seen, cursor = [], None
        for _ in range(30):
            page = list_tasks(t, limit=5, cursor=cursor, **filters)
            seen += [(x["task_id"], x["namespace"], x["name"], x["version"],
                      x["status"]) for x in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("pagination does not end: %r" % seen)

    def want(pred):
        return [m for m in sorted(made, reverse=True) if pred(m)]
    got = pages(namespace="a")
    assert [g[:4] for g in got] == want(lambda m: m[1] == "a"), got
    got = pages(name="x")
    assert [g[:4] for g in got] == want(lambda m: m[2] == "x"), got
    got = pages(namespace="a", name="x", status="error")
    assert [g[:4] for g in got] == want(lambda m: m[3] == "2.0.0"), got
    assert all(g[4] == "error" for g in got), got
    assert pages(namespace="a", name="x", status="cancelled") == []
    assert pages(namespace="nowhere") == []
    got = pages(status="complete")
    assert [g[:4] for g in got] == want(lambda m: m[3] != "2.0.0"), got


def test_templates_listed(taskerd):
    t = taskerd(templates={"chain.yaml": CHAIN, "failing.yaml": FAILING})
    r = t.get("/v1/templates")
    assert r.status == 200, r
    by = {(x["namespace"], x["name"]): x for x in r.body["templates"]}
    assert set(by) == {("it", "api_chain"), ("it", "api_failing")}
    chain = by[("it", "api_chain")]
    assert chain["version"] == "1.0.0"
    assert chain["description"] == "three noop steps"
    assert chain["identity_strategy"] == "always_unique"
    assert [(s["name"], s["handler"], sorted(s["depends_on"])) for s in chain["steps"]] == [
        ("one", "noop", []), ("two", "noop", ["one"]), ("three", "noop", ["one", "two"])]

    r = t.get("/v1/templates/it/api_chain")
    assert r.status == 200, r
    assert (r.body["namespace"], r.body["name"], r.body["version"]) == ("it", "api_chain", "1.0.0")
    assert [s["name"] for s in r.body["steps"]] == ["one", "two", "three"]
    harness.assert_json_error(t.get("/v1/templates/it/no_such"), 404)


def test_highest_version_is_the_default(taskerd):
    v9 = CHAIN.replace("version: 1.0.0", "version: 1.9.0")
    v10 = CHAIN.replace("version: 1.0.0", "version: 1.10.0").replace(
        "{ x: 1 }", "{ x: 10 }")
    t = taskerd(templates={"chain_v9.yaml": v9, "chain_v10.yaml": v10})
    versions = sorted(x["version"] for x in t.get("/v1/templates").body["templates"])
    assert versions == ["1.10.0", "1.9.0"]
    latest = t.create_task("api_chain", {}, namespace="it")
    assert latest["version"] == "1.10.0"
    pinned = t.create_task("api_chain", {}, namespace="it", version="1.9.0")
    assert pinned["version"] == "1.9.0"
    assert harness.steps_by_name(t.wait_task(latest["task_id"]))["one"]["results"] == {"x": 10}
    assert harness.steps_by_name(t.wait_task(pinned["task_id"]))["one"]["results"] == {"x": 1}


def test_health_and_workers(taskerd):
    t = taskerd(templates={"chain.yaml": CHAIN}, workers=3)
    r = t.get("/health/live")
    assert (r.status, r.body) == (200, {"status": "ok"})
    r = t.get("/health/ready")
    assert r.status == 200 and r.body["status"] == "ready", r
    def all_idle():
        ws = t.workers()
        return ws if ws and all(w["state"] == "idle" for w in ws) else None
    workers = harness.wait_until(all_idle, 10, message="idle workers")
    assert len(workers) == 3, workers
    assert len({w["slot"] for w in workers}) == 3
    for w in workers:
        assert {"slot", "pid", "state", "task_id", "step", "attempt", "restarts"} <= set(w)
        assert harness.proc_ppid(w["pid"]) == t.pid, w
        assert (w["task_id"], w["step"]) == (None, None), w


SLOW = """\
name: api_slow
namespace_name: it
version: 1.0.0
step_templates:
  - name: nap
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""


def test_nodes(taskerd):
    """GET /v1/nodes: this node, alive, its lease renewed, and the steps it
    holds."""
    t = taskerd(templates={"slow.yaml": SLOW}, workers=1,
                config={"scheduler.lease": "3s"})

    def me():
        r = t.get("/v1/nodes")
        assert r.status == 200, (r.status, r.body)
        mine = [n for n in r.body["nodes"] if n["this_node"]]
        return mine[0] if mine else None
    node = harness.wait_until(me, 10, message="this node's row")
    assert node["node_id"] == t.config["node_id"], node
    assert node["alive"] is True and node["pid"] == t.pid, node
    assert iso(node["lease_expires_at"]) > iso(node["heartbeat_at"]), node
    first_beat = iso(node["heartbeat_at"])

    tid = t.create_task("api_slow", {}, namespace="it")["task_id"]
    held = harness.wait_until(
        lambda: (lambda n: n if n["claimed_steps"] == 1 else None)(me()), 10,
        message="the running step counted as this node's claim")
    # The heartbeat renews the lease every third of it.
    assert iso(held["heartbeat_at"]) > first_beat or harness.wait_until(
        lambda: iso(me()["heartbeat_at"]) > first_beat, 5,
        message="a renewed heartbeat")
    t.wait_task(tid, timeout=20)
    assert me()["claimed_steps"] == 0
    r = t.post("/v1/nodes", json={})
    harness.assert_json_error(r, 405, "method_not_allowed")


def test_sigterm_stops_daemon_and_workers(taskerd):
    t = taskerd(templates={"chain.yaml": CHAIN})
    pids = [w["pid"] for w in t.workers()]
    assert pids
    code = t.stop()
    assert code == 0, "taskerd exited %s on SIGTERM\n%s" % (code, t.log_tail(40))
    assert not t.orphans, "workers %s outlived taskerd" % t.orphans
    assert not any(harness.proc_alive(p) for p in pids)


def test_names_as_long_as_templates_allow_are_reachable(taskerd):
    """A name of 128 bytes (the most a template may give: longer ones are
    refused at load) and a route of 8 segments are reached through the
    API; they used to answer 404 from 128 bytes and 7 segments on."""
    step = "s" * 128
    name = "n" * 128
    route = "/r/2/3/4/5/6/7/{task_id}"
    t = taskerd(templates={"long.yaml": """\
name: %s
namespace_name: %s
version: 1.0.0
routes:
  status: { path: "%s" }
step_templates:
  - name: %s
    handler: noop
""" % (name, name, route, step)})
    tid = t.create_task(name, {}, namespace=name)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    r = t.get("/v1/tasks/%d/steps/%s" % (tid, step))
    assert r.status == 200 and r.body["name"] == step, r.body
    r = t.get("/v1/tasks/%d/steps/%s/transitions" % (tid, step))
    assert r.status == 200, r.body
    r = t.get("/v1/templates/%s/%s" % (name, name))
    assert r.status == 200 and r.body["name"] == name, r.body
    r = t.get(route.replace("{task_id}", str(tid)))
    assert r.status == 200 and r.body["status"] == "complete", r.body
    r = t.request("DELETE", route.replace("{task_id}", str(tid)))
    harness.assert_json_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD", dict(r.headers)
    # One segment more than a route may have: not found, as before.
    r = t.get("/v1/tasks/%d/steps/%s/transitions/x/y/z" % (tid, step))
    assert r.status == 404, r.body


def test_template_routes_match_the_decoded_path(taskerd):
    """A template's routes are matched on the decoded path, as /v1 is: a
    route with a space is reachable, an id may be percent-encoded, and
    empty segments do not count; a segment that decodes to hold a '/'
    matches no route."""
    t = taskerd(templates={"signups.yaml": """\
name: signups
namespace_name: it
version: 1.0.0
routes:
  create: { path: "/sign ups//new/" }
  status: { path: "/sign ups/status/{task_id}" }
step_templates:
  - name: only
    handler: noop
"""})
    r = t.post("/sign%20ups/new", json={})
    assert r.status == 201, (r.status, r.body)
    tid = r.body["task_id"]
    monitor = r.body["monitor_url"]
    assert monitor == "/sign%%20ups/status/%d" % tid, r.body
    r = t.post("/sign%20ups//new/", json={})
    assert r.status == 201, (r.status, r.body)
    t.wait_task(tid)
    r = t.get(monitor)
    assert r.status == 200 and r.body["task_id"] == tid, (r.status, r.body)
    encoded = "".join("%%%02X" % ord(c) for c in str(tid))
    r = t.get("/sign%20ups/status/" + encoded)
    assert r.status == 200 and r.body["task_id"] == tid, (r.status, r.body)
    assert r.body["status"] == "complete", r.body
    for path in ("/sign%20ups%2Fstatus/" + str(tid),
                 "/sign%20ups/status/" + str(tid) + "%2F1",
                 "/sign%20ups%2Fnew"):
        harness.assert_json_error(t.get(path), 404, "not_found")
    r = t.post("/sign%20ups%2Fnew", json={})
    harness.assert_json_error(r, 404, "not_found")
    r = t.get("/sign%20ups/new")
    harness.assert_json_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST", dict(r.headers)


def test_template_route_errors_name_their_code(taskerd):
    """Every error a template's route answers is in the routes' format
    with the code /v1 would give: the status and results routes had no
    `code`, creation's had one."""
    t = taskerd(templates={"signups.yaml": """\
name: signups
namespace_name: it
version: 1.0.0
routes:
  create: { path: "/signups" }
  status: { path: "/signups/status/{task_id}" }
  results: { path: "/signups/results/{task_id}", body: { ok: true } }
step_templates:
  - name: only
    handler: noop
"""}, config={"http.max_body": "1KiB"})

    def error(r, status, code):
        assert r.status == status, (r.status, r.body)
        assert r.body.get("success") is False, r.body
        assert isinstance(r.body.get("error"), str) and r.body["error"], \
            r.body
        assert r.body.get("code") == code, r.body
        return r.body

    error(t.post("/signups", data=b'{"a": '), 400, "bad_json")
    error(t.post("/signups", data=b'{"a": "' + b"x" * 2048 + b'"}'), 413,
          "body_too_large")
    error(t.post("/signups", json=[1]), 422, "invalid_context")
    error(t.get("/signups/status/424242"), 404, "not_found")
    error(t.get("/signups/status/0"), 404, "not_found")
    error(t.get("/signups/results/424242"), 404, "not_found")
    r = t.post("/signups", json={})
    assert r.status == 201, (r.status, r.body)
    assert t.wait_task(r.body["task_id"])["status"] == "complete"
    r = t.get("/signups/results/%d" % r.body["task_id"])
    assert r.status == 200 and r.body == {"ok": True}, (r.status, r.body)


def test_results_route_of_a_task_resolved_by_hand(taskerd):
    """A step an operator resolved by hand has no results: the results
    route of the task answers what there is, null for the rest.  It
    answered 500 ("missing path") on every call."""
    t = taskerd(templates={"signups.yaml": """\
name: accounts
namespace_name: it
version: 1.0.0
routes:
  results:
    path: "/accounts/results/{task_id}"
    body:
      id: "{{steps.create.results.id}}"
      label: "account {{steps.create.results.id}} ({{context.plan}})"
      plan: "{{context.plan}}"
      note: "{{steps.create.results.note?}}"
step_templates:
  - name: create
    handler: noop
    handler_config: { fail: permanent }
  - name: welcome
    handler: noop
    depends_on_step: create
"""})
    tid = t.create_task("accounts", {"plan": "basic"}, namespace="it")[
        "task_id"]
    assert t.wait_task(tid)["status"] == "error"
    r = t.patch("/v1/tasks/%d/steps/create" % tid,
                json={"action": "resolve_manually", "reason": "by hand"})
    assert r.status == 200, r.body
    assert t.wait_task(tid)["status"] == "resolved_manually"
    r = t.get("/accounts/results/%d" % tid)
    assert r.status == 200, (r.status, r.body)
    assert r.body == {"id": None, "label": "account  (basic)",
                      "plan": "basic"}, r.body
    assert not t.log_lines("results route cannot render"), t.log_tail(10)


def test_empty_and_null_fields_are_absent_in_every_body(taskerd):
    """An empty version or namespace is absent, as an empty key is: the
    newest version of the template in "default" (an empty version was
    looked up as "name@" and answered 404).  A null "results" in a manual
    completion is absent too (it was a 400)."""
    t = taskerd(templates={"chain.yaml": CHAIN, "failing.yaml": FAILING,
                           "plain.yaml": "name: plain\nversion: 2.0.0\n"
                           "step_templates:\n  - name: only\n"
                           "    handler: noop\n"})
    r = t.post("/v1/tasks", json={"name": "plain", "namespace": "",
                                  "version": ""})
    assert r.status == 201, (r.status, r.body)
    assert r.body["namespace"] == "default" and r.body["version"] == "2.0.0", \
        r.body
    r = t.post("/v1/tasks", json={"name": "api_failing", "namespace": "it"})
    assert r.status == 201, (r.status, r.body)
    tid = r.body["task_id"]
    assert t.wait_task(tid)["status"] == "error"
    r = t.patch("/v1/tasks/%d/steps/doomed" % tid,
                json={"action": "complete_manually", "reason": "by hand",
                      "results": None})
    assert r.status == 200, (r.status, r.body)
    assert t.wait_task(tid)["status"] == "complete"


def test_ids_and_cursors_up_to_the_largest_bigint(taskerd):
    """An id or cursor of 19 digits is read (it was refused from 10^18 on:
    the listing's own first cursor, 2^63 - 1, answered 400); one past
    2^63 - 1 is not an id."""
    t = taskerd(templates={"chain.yaml": CHAIN})
    tid = t.create_task("api_chain", {}, namespace="it")["task_id"]
    t.wait_task(tid)
    page = list_tasks(t, cursor="9223372036854775807")
    assert [x["task_id"] for x in page["tasks"]] == [tid], page
    harness.assert_json_error(t.get("/v1/tasks/9223372036854775807"), 404,
                              "not_found")
    harness.assert_json_error(t.get("/v1/tasks/1000000000000000000"), 404,
                              "not_found")
    harness.assert_json_error(t.get("/v1/tasks/9223372036854775808"), 404,
                              "not_found")
    harness.assert_json_error(t.get("/v1/tasks?cursor=9223372036854775808"),
                              400, "invalid_request")


def test_query_keys_are_decoded_as_values_are(taskerd):
    """A percent-encoded query key is the key it encodes ("st%61tus" is
    "status": it was refused as unknown); an unknown one is still refused,
    by its decoded name, and a key given twice, however written."""
    t = taskerd(templates={"chain.yaml": CHAIN, "failing.yaml": FAILING})
    ok = t.create_task("api_chain", {}, namespace="it")["task_id"]
    bad = t.post("/v1/tasks", json={"name": "api_failing",
                                    "namespace": "it"}).body["task_id"]
    t.wait_task(ok)
    t.wait_task(bad)
    r = t.get("/v1/tasks?st%61tus=error&n%61me=api%5Ffailing")
    assert r.status == 200, (r.status, r.body)
    assert [x["task_id"] for x in r.body["tasks"]] == [bad], r.body
    r = t.get("/v1/tasks?st%61tu=error")
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert '"statu"' in err["message"], err
    r = t.get("/v1/tasks?status=error&st%61tus=complete")
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert "twice" in err["message"], err


def test_an_empty_listing_filter_is_refused(taskerd):
    """"?namespace=$NS" with NS unset: refused as an empty filter, not
    answered as an empty list (it matched a namespace named "", while a
    task created with an empty namespace is in "default")."""
    t = taskerd(templates={"chain.yaml": CHAIN})
    r = t.post("/v1/tasks", json={"name": "api_chain", "namespace": "it",
                                  "context": {}})
    assert r.status == 201, r.body
    for key in ("namespace", "name", "status", "cursor", "limit"):
        err = harness.assert_json_error(t.get("/v1/tasks?%s=" % key), 400,
                                        "invalid_request")
        assert err["message"] == 'query parameter "%s" is empty' % key, err
    assert len(t.get("/v1/tasks?namespace=it").body["tasks"]) == 1
