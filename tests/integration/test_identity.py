"""Task identity and context validation (issue 3, acceptance 6 and 7).

identity_strategy per template:
  strict           a second task with the same context (whatever the key
                   order) answers 409 duplicate_task with the first task's
                   id and status; another context makes a new task.
  caller_provided  "idempotency_key" is required (422 without); the same
                   key again answers 409 with the first task's id.
  always_unique    (the default) duplicates are separate tasks, unless
                   the client sends an idempotency key: then the same key
                   is the same task, as under caller_provided.

schema: a context that violates the template's JSON Schema answers 422
invalid_context listing every violation with its JSON path, and writes
nothing; defaults are inserted into the stored context.
"""

import json
import os
import random
import signal

import pytest

import harness

NS = "ident"


def tmpl(name, strategy=None, schema=None):
    text = "name: %s\nnamespace_name: %s\nversion: 1.0.0\n" % (name, NS)
    if strategy:
        text += "identity_strategy: %s\n" % strategy
    if schema is not None:
        # JSON is YAML: the schema goes in as one flow mapping.
        text += "schema: %s\n" % json.dumps(schema)
    text += """\
step_templates:
  - name: only
    handler: noop
    handler_config: { results: { done: true } }
"""
    return text


def post_raw(t, text):
    return t.post("/v1/tasks", data=text)


def task_rows(t):
    return int(t.pg.scalar(t.db, "select count(*) from tasks"))


def assert_duplicate(r, first):
    """r is the 409 for a duplicate of task `first` (a task object)."""
    err = harness.assert_json_error(r, 409, "duplicate_task")
    assert err.get("task_id") == first["task_id"], err
    assert err.get("status") == first["status"], (err, first["status"])
    return err


def test_strict_identity(taskerd):
    t = taskerd(templates={"orders.yaml": tmpl("orders", "strict"),
                           "invoices.yaml": tmpl("invoices", "strict")})
    r = post_raw(t, '{"name": "orders", "namespace": "%s", "context": '
                    '{"customer": 7, "order": {"sku": "A-1", "qty": 2}}}' % NS)
    assert r.status == 201, (r.status, r.body)
    first = r.body
    first = t.wait_task(first["task_id"], timeout=20)
    assert first["status"] == "complete", first

    # The same context, keys in another order at both levels: a duplicate.
    r = post_raw(t, '{"namespace": "%s", "context": {"order": {"qty": 2, '
                    '"sku": "A-1"}, "customer": 7}, "name": "orders"}' % NS)
    assert_duplicate(r, first)
    # The same numbers written otherwise (5.0 for 5, 2e0 for 2, 1.50 for
    # 1.5): the same JSON, a duplicate.
    r = post_raw(t, '{"name": "orders", "namespace": "%s", "context": '
                    '{"customer": 7.0, "order": {"sku": "A-1", "qty": 2e0}}}'
                 % NS)
    assert_duplicate(r, first)
    # Fields that are not the context do not make it new.
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"customer": 7, "order": {
                                      "sku": "A-1", "qty": 2}},
                                  "initiator": "someone else",
                                  "reason": "again"})
    assert_duplicate(r, first)
    assert task_rows(t) == 1

    # The duplicate answer carries the status the first task has now.
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"customer": 8}})
    assert r.status == 201, (r.status, r.body)
    second = r.body
    assert second["task_id"] != first["task_id"]
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"customer": 8}})
    err = harness.assert_json_error(r, 409, "duplicate_task")
    assert err["task_id"] == second["task_id"], err
    assert err["status"] in ("pending", "in_progress", "complete"), err
    second = t.wait_task(second["task_id"], timeout=20)
    assert second["status"] == "complete", second
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"customer": 8}})
    assert_duplicate(r, second)

    r = post_raw(t, '{"name": "orders", "namespace": "%s", "context": '
                    '{"price": 1.50}}' % NS)
    assert r.status == 201, (r.status, r.body)
    err = harness.assert_json_error(post_raw(
        t, '{"name": "orders", "namespace": "%s", "context": '
        '{"price": 1.5}}' % NS), 409, "duplicate_task")
    assert err["task_id"] == r.body["task_id"], err
    # A value that differs only in type is another context.
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"customer": "8"}})
    assert r.status == 201, (r.status, r.body)
    # Identity is per template: the same context for another one is new.
    r = t.post("/v1/tasks", json={"name": "invoices", "namespace": NS,
                                  "context": {"customer": 8}})
    assert r.status == 201, (r.status, r.body)
    assert task_rows(t) == 5      # (7, 8, 1.5, "8", and 8 of invoices)


NUMBERS = ["5", "5.0", "-0.0", "0.0", "1.5", "1.50", "2e0", "100.0",
           "-3.0e2", "1e16", "1e17", "1e23", "1e-7", "0.1", "123456789012345678",
           "12345678901234567.0", "9007199254740993.0", "99999999999999999.0",
           "1.7976931348623157e308", "5e-324", "1.8446744073709552e19",
           '[1.0, [2.0, {"a": 3.0, "b": "4.0"}]]', '{"z": 1.25, "y": [0.5]}']


def test_strict_identity_hashes_what_the_database_would(taskerd, pg):
    """The node hashes a strict context's numbers at their least scale
    itself; nodes of a rolling deploy did it in SQL (taskerd_canonical):
    every kind of number gives the same hash both ways."""
    t = taskerd(templates={"orders.yaml": tmpl("orders", "strict")})
    for n in NUMBERS:
        r = post_raw(t, '{"name": "orders", "namespace": "%s", "context": '
                        '{"n": %s, "s": "%s"}}' % (NS, n, n.replace('"', "'")))
        assert r.status in (201, 409), (n, r.status, r.body)
    rnd = random.Random(7)
    for form in ("%r", "%.17g", "%.1f"):
        vals = [form % (rnd.choice([1, -1]) * rnd.randint(0, 10 ** 6) *
                        10.0 ** rnd.randint(-12, 18)) for _ in range(300)]
        r = post_raw(t, '{"name": "orders", "namespace": "%s", "context": '
                        '{"many": [%s]}}' % (NS, ", ".join(vals)))
        assert r.status == 201, (r.status, r.body)
    rows = pg.json(t.db, "SELECT id, context, identity_hash = 'sha256:' || "
                   "encode(sha256(convert_to(taskerd_canonical(context)::"
                   "text, 'UTF8')), 'hex') AS same FROM tasks ORDER BY id")
    assert len(rows) >= len(NUMBERS) - 4, rows    # (5, 1.5, 1e16... twice)
    assert all(r["same"] for r in rows), [r for r in rows if not r["same"]]


def test_a_large_strict_context_is_created(taskerd):
    """A context of 500,000 values (under the body limit): its identity
    took the database 50 us a value, past the statement timeout, and every
    creation batched with it failed with 503 too."""
    t = taskerd(templates={"orders.yaml": tmpl("orders", "strict")},
                config={"database": {"statement_timeout": "10s"}})
    ctx = {"arr": [[[[[[[[1]]]]]]]] * 55000, "price": 1.0}
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": ctx}, timeout=60)
    assert r.status == 201, (r.status, str(r.body)[:300])
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": dict(ctx, price=1)}, timeout=60)
    harness.assert_json_error(r, 409, "duplicate_task")


def test_caller_provided_identity(taskerd):
    t = taskerd(templates={"payments.yaml": tmpl("payments",
                                                 "caller_provided")})
    before = harness.row_counts(t.pg, t.db)
    r = t.post("/v1/tasks", json={"name": "payments", "namespace": NS,
                                  "context": {"amount": 10}})
    harness.assert_json_error(r, 422, "idempotency_key_required")
    # An empty key is none: every empty key would be the same task.
    r = t.post("/v1/tasks", json={"name": "payments", "namespace": NS,
                                  "context": {"amount": 10},
                                  "idempotency_key": ""})
    harness.assert_json_error(r, 422, "idempotency_key_required")
    assert harness.row_counts(t.pg, t.db) == before, "a refused task left rows"

    r = t.post("/v1/tasks", json={"name": "payments", "namespace": NS,
                                  "context": {"amount": 10},
                                  "idempotency_key": "pay-1"})
    assert r.status == 201, (r.status, r.body)
    first = t.wait_task(r.body["task_id"], timeout=20)

    # The same key is the same task, whatever the context says.
    for ctx in ({"amount": 10}, {"amount": 99}):
        r = t.post("/v1/tasks", json={"name": "payments", "namespace": NS,
                                      "context": ctx,
                                      "idempotency_key": "pay-1"})
        assert_duplicate(r, first)
    r = t.post("/v1/tasks", json={"name": "payments", "namespace": NS,
                                  "context": {"amount": 10},
                                  "idempotency_key": "pay-2"})
    assert r.status == 201, (r.status, r.body)
    assert r.body["task_id"] != first["task_id"]
    assert task_rows(t) == 2


def test_a_key_outlives_a_new_version(taskerd):
    """A key names one task of a template whatever its version: a retry
    sent after a new version was loaded answers 409 with the first task
    (it made a second one).  Another key gets the new version.  A strict
    template's identity stays per version (its name and version are part
    of it)."""
    t = taskerd(templates={"payments.yaml": tmpl("payments",
                                                 "caller_provided"),
                           "pings.yaml": tmpl("pings")})
    firsts = {}
    for name in ("payments", "pings"):
        r = t.post("/v1/tasks", json={"name": name, "namespace": NS,
                                      "context": {}, "idempotency_key": "k1"})
        assert r.status == 201, (r.status, r.body)
        firsts[name] = t.wait_task(r.body["task_id"], timeout=20)
    tdir = t.config["templates"]["dir"]
    for name, strategy in (("payments", "caller_provided"), ("pings", None)):
        with open(os.path.join(tdir, name + ".yaml"), "w") as f:
            f.write(tmpl(name, strategy).replace("version: 1.0.0",
                                                 "version: 2.0.0"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates reloaded"), 10,
                       message="the reload")
    for name in ("payments", "pings"):
        r = t.post("/v1/tasks", json={"name": name, "namespace": NS,
                                      "context": {}, "idempotency_key": "k1"})
        assert_duplicate(r, firsts[name])
        r = t.post("/v1/tasks", json={"name": name, "namespace": NS,
                                      "context": {}, "idempotency_key": "k2"})
        assert r.status == 201 and r.body["version"] == "2.0.0", r.body
    assert task_rows(t) == 4


@pytest.mark.parametrize("isolation", [None, "repeatable read"])
def test_a_key_sent_to_two_versions_at_once_makes_one_task(taskerd, pg,
                                                           isolation):
    """Clients send one key to both loaded versions of a template at
    once: one task, one 201, every other answer a 409 naming it.  The
    unique index holds per version only, and each of two batches (or two
    requests in one) saw no task of the other's: both were stored.  (Also
    with a database whose default isolation is repeatable read, where a
    statement after a lock would not see what the lock's holder wrote.)"""
    import threading
    v1 = tmpl("payments", "caller_provided")
    db = pg.createdb()
    if isolation:
        pg.execute(db, "ALTER DATABASE %s SET default_transaction_isolation"
                   " = '%s'" % (db, isolation))
    t = taskerd(db=db, templates={"payments1.yaml": v1, "payments2.yaml":
                                  v1.replace("version: 1.0.0",
                                             "version: 2.0.0")})
    keys = ["k%d" % i for i in range(12)]
    answers = {k: [] for k in keys}
    lock = threading.Lock()
    go = threading.Barrier(len(keys) * 4)

    def client(key, version):
        go.wait()
        r = t.post("/v1/tasks", json={
            "name": "payments", "namespace": NS, "version": version,
            "context": {}, "idempotency_key": key})
        with lock:
            answers[key].append(r)
    threads = [threading.Thread(target=client, args=(k, v))
               for k in keys for v in ("1.0.0", "2.0.0") * 2]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    for key, rs in answers.items():
        assert len(rs) == 4, (key, rs)
        created = [r for r in rs if r.status == 201]
        assert len(created) == 1, (key, [(r.status, r.body) for r in rs])
        for r in rs:
            if r.status != 201:
                err = harness.assert_json_error(r, 409, "duplicate_task")
                assert err["task_id"] == created[0].body["task_id"], err
    assert task_rows(t) == len(keys)


def test_empty_and_null_fields_are_absent(taskerd):
    """An empty idempotency_key in the body is no key: the header's is
    used (the empty one was taken, and answered 422 key required).  A null
    context or tags is absent, as a null string field is (it was a 400)."""
    t = taskerd(templates={"payments.yaml": tmpl("payments",
                                                 "caller_provided")})
    body = {"name": "payments", "namespace": NS, "context": None,
            "tags": None, "idempotency_key": ""}
    r = t.post("/v1/tasks", json=body, headers={"Idempotency-Key": "h1"})
    assert r.status == 201, (r.status, r.body)
    assert r.body["idempotency_key"] == "h1", r.body
    assert r.body["context"] == {} and r.body["tags"] == [], r.body
    first = t.wait_task(r.body["task_id"], timeout=20)
    again = t.post("/v1/tasks", json=body, headers={"Idempotency-Key": "h1"})
    assert_duplicate(again, first)
    r = t.post("/v1/tasks", json=body)
    harness.assert_json_error(r, 422, "idempotency_key_required")


def test_always_unique_is_the_default(taskerd):
    t = taskerd(templates={"pings.yaml": tmpl("pings"),
                           "pongs.yaml": tmpl("pongs", "always_unique")})
    ids = set()
    for name in ("pings", "pongs"):
        for _ in range(2):
            r = t.post("/v1/tasks", json={"name": name, "namespace": NS,
                                          "context": {"same": True}})
            assert r.status == 201, (name, r.status, r.body)
            ids.add(r.body["task_id"])
    assert len(ids) == 4, ids
    assert task_rows(t) == 4


def test_a_key_sent_to_always_unique_is_kept(taskerd):
    """A client that sends an idempotency key (in the body or as the
    Idempotency-Key header) is asking not to get two tasks: it does not,
    whatever the template's strategy.  A strict template's identity stays
    its context, and its task shows no key."""
    route = "routes:\n  create: { path: /pings }\n"
    t = taskerd(templates={"pings.yaml": tmpl("pings") + route,
                           "orders.yaml": tmpl("orders", "strict")})
    r = t.post("/v1/tasks", json={"name": "pings", "namespace": NS,
                                  "context": {"n": 1},
                                  "idempotency_key": "ping-1"})
    assert r.status == 201, (r.status, r.body)
    first = r.body
    assert first["idempotency_key"] == "ping-1", first
    got = t.wait_task(first["task_id"], timeout=20)
    assert got["idempotency_key"] == "ping-1", got
    # The answer to the create has what GET has.
    assert set(first) == set(got), sorted(set(first) ^ set(got))

    # The same key again, in the body or as the header: the first task.
    for body, headers in (({"idempotency_key": "ping-1"}, None),
                          ({}, {"Idempotency-Key": "ping-1"}),
                          ({"idempotency_key": "ping-1"},
                           {"Idempotency-Key": "ping-1"})):
        r = t.post("/v1/tasks", json=dict(body, name="pings", namespace=NS,
                                          context={"n": 2}),
                   headers=headers)
        assert_duplicate(r, got)
    # The template's own create route takes the header as well.
    r = t.post("/pings", json={"n": 3}, headers={"Idempotency-Key": "ping-1"})
    assert r.status == 409, (r.status, r.body)
    assert task_rows(t) == 1

    # A header that is not UTF-8: refused, and nothing is written.
    r = t.post("/v1/tasks", json={"name": "pings", "namespace": NS},
               headers={"Idempotency-Key": b"ping-\xff"})
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert "UTF-8" in err["message"], err
    assert task_rows(t) == 1

    # Another key is another task.  The body's key wins over a header
    # (a taskerd http step that creates a task sends its own header).
    r = t.post("/v1/tasks", json={"name": "pings", "namespace": NS,
                                  "idempotency_key": "ping-2"},
               headers={"Idempotency-Key": "ping-1"})
    assert r.status == 201 and r.body["idempotency_key"] == "ping-2", \
        (r.status, r.body)
    # No key (or an empty one): a new task every time.
    for key in (None, None, "", ""):
        body = {"name": "pings", "namespace": NS}
        if key is not None:
            body["idempotency_key"] = key
        r = t.post("/v1/tasks", json=body)
        assert r.status == 201, (key, r.status, r.body)
        assert r.body["idempotency_key"] is None, r.body
    assert task_rows(t) == 6

    # Strict: the context is the identity; a key changes nothing and the
    # task shows none.
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"n": 1},
                                  "idempotency_key": "order-1"})
    assert r.status == 201 and r.body["idempotency_key"] is None, \
        (r.status, r.body)
    assert t.task(r.body["task_id"])["idempotency_key"] is None
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"n": 1},
                                  "idempotency_key": "order-2"})
    harness.assert_json_error(r, 409, "duplicate_task")
    # (Not kept, so not too long either.)
    r = t.post("/v1/tasks", json={"name": "orders", "namespace": NS,
                                  "context": {"n": 2},
                                  "idempotency_key": "k" * 300})
    assert r.status == 201, (r.status, r.body)


SCHEMA = {
    "type": "object",
    "required": ["email", "plan"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "format": "email"},
        "plan": {"enum": ["free", "pro"]},
        "seats": {"type": "integer", "minimum": 1, "maximum": 100,
                  "default": 1},
        "name": {"type": "string", "minLength": 2, "pattern": "^[A-Z]"},
        "tags": {"type": "array", "maxItems": 3,
                 "items": {"type": "string", "maxLength": 5}},
        "region": {"type": "string", "default": "eu"},
    },
}


def test_schema_violations_are_all_listed_and_nothing_is_written(taskerd):
    t = taskerd(templates={"signup.yaml": tmpl("signup", schema=SCHEMA)})
    before = harness.row_counts(t.pg, t.db)

    bad = {"email": "not-an-address", "seats": 500, "name": "x",
           "tags": ["ok", "much-too-long"], "shoe_size": 44}
    r = t.post("/v1/tasks", json={"name": "signup", "namespace": NS,
                                  "context": bad})
    err = harness.assert_json_error(r, 422, "invalid_context")
    viol = err.get("violations")
    assert isinstance(viol, list) and viol, err
    for v in viol:
        assert isinstance(v.get("path"), str) and v["path"].startswith("$"), v
        assert isinstance(v.get("message"), str) and v["message"], v
    paths = [v["path"] for v in viol]
    expected = {
        "$.plan",           # required, missing
        "$.email",          # format email
        "$.seats",          # maximum
        "$.name",           # minLength and pattern
        "$.tags[1]",        # maxLength of an item
        "$.shoe_size",      # additionalProperties
    }
    assert expected <= set(paths), "violations %s miss %s" % (
        json.dumps(viol, indent=1), sorted(expected - set(paths)))
    # minLength and pattern are two violations of $.name.
    assert paths.count("$.name") == 2, viol
    assert harness.row_counts(t.pg, t.db) == before, \
        "a refused task left rows"

    # A wrong type at the top and in an array.
    r = t.post("/v1/tasks", json={"name": "signup", "namespace": NS,
                                  "context": {"email": "a@example.com",
                                              "plan": "gold", "seats": "2",
                                              "tags": [1, "a", "b", "c"]}})
    err = harness.assert_json_error(r, 422, "invalid_context")
    paths = sorted(v["path"] for v in err["violations"])
    assert {"$.plan", "$.seats", "$.tags", "$.tags[0]"} <= set(paths), \
        err["violations"]
    assert harness.row_counts(t.pg, t.db) == before


def test_schema_defaults_are_stored(taskerd):
    t = taskerd(templates={"signup.yaml": tmpl("signup", schema=SCHEMA)})
    r = t.post("/v1/tasks", json={"name": "signup", "namespace": NS,
                                  "context": {"email": "ann@example.com",
                                              "plan": "pro", "seats": 3}})
    assert r.status == 201, (r.status, r.body)
    tid = r.body["task_id"]
    want = {"email": "ann@example.com", "plan": "pro", "seats": 3,
            "region": "eu"}
    assert r.body["context"] == want, r.body
    assert t.task(tid)["context"] == want
    stored = json.loads(t.pg.scalar(t.db, "select context::text from tasks "
                                          "where id = %d" % tid))
    assert stored == want, stored

    # An absent property with a default gets it; a present one is kept.
    r = t.post("/v1/tasks", json={"name": "signup", "namespace": NS,
                                  "context": {"email": "bob@example.com",
                                              "plan": "free"}})
    assert r.status == 201, (r.status, r.body)
    assert r.body["context"] == {"email": "bob@example.com", "plan": "free",
                                 "seats": 1, "region": "eu"}, r.body
    assert t.wait_task(r.body["task_id"], timeout=20)["status"] == "complete"


def test_defaults_nested_too_deep_are_refused(taskerd):
    """A default can make the context deeper than a step can carry to its
    worker: that creation is refused (it was created, and every step
    failed with input_too_large)."""
    deep = {}
    for _ in range(30):
        deep = {"d": deep}
    t = taskerd(templates={"deep.yaml": tmpl("deep", schema={
        "type": "object", "properties": {"tree": {"default": deep}}})})
    r = t.post("/v1/tasks", json={"name": "deep", "namespace": NS,
                                  "context": {}})
    err = harness.assert_json_error(r, 422, "invalid_context")
    assert "defaults" in err["message"], err
    assert task_rows(t) == 0
    r = t.post("/v1/tasks", json={"name": "deep", "namespace": NS,
                                  "context": {"tree": {"d": {}}}})
    assert r.status == 201, (r.status, r.body)
    assert t.wait_task(r.body["task_id"], timeout=20)["status"] == "complete"


def test_strict_identity_under_concurrent_creation(taskerd):
    """Eight clients create the same task at once: one task, one 201, and
    every other answer is a 409 naming it."""
    import threading
    t = taskerd(templates={"orders.yaml": tmpl("orders", "strict")})
    body = {"name": "orders", "namespace": NS, "context": {"race": 1}}
    answers = []
    lock = threading.Lock()
    go = threading.Event()

    def client():
        go.wait()
        r = t.post("/v1/tasks", json=body)
        with lock:
            answers.append(r)
    threads = [threading.Thread(target=client) for _ in range(8)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join(30)
    assert len(answers) == 8
    created = [r for r in answers if r.status == 201]
    assert len(created) == 1, [(r.status, r.body) for r in answers]
    tid = created[0].body["task_id"]
    for r in answers:
        if r.status != 201:
            err = harness.assert_json_error(r, 409, "duplicate_task")
            assert err["task_id"] == tid, err
    assert task_rows(t) == 1


NESTED = {
    "type": "object",
    "required": ["user", "version"],
    "properties": {
        "version": {"const": 2},
        "callback": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "user": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 18},
            },
        },
        "items": {"type": "array", "minItems": 2,
                  "items": {"type": "object", "required": ["sku"]}},
    },
}


def test_schema_nested_paths_and_more_keywords(taskerd):
    t = taskerd(templates={"nested.yaml": tmpl("nested", schema=NESTED)})
    before = harness.row_counts(t.pg, t.db)
    bad = {"version": 3, "callback": "not a uri", "when": "yesterday",
           "user": {"age": 12, "admin": True}, "items": [{"qty": 1}]}
    r = t.post("/v1/tasks", json={"name": "nested", "namespace": NS,
                                  "context": bad})
    err = harness.assert_json_error(r, 422, "invalid_context")
    paths = [v["path"] for v in err["violations"]]
    expected = ["$.version", "$.callback", "$.when", "$.user.name",
                "$.user.age", "$.user.admin", "$.items", "$.items[0].sku"]
    assert sorted(set(paths)) == sorted(expected), err["violations"]
    assert len(paths) == len(expected), err["violations"]
    assert harness.row_counts(t.pg, t.db) == before

    good = {"version": 2, "callback": "https://example.com/hook",
            "when": "2024-05-01T12:00:00Z", "user": {"name": "Ann", "age": 30},
            "items": [{"sku": "a"}, {"sku": "b"}]}
    r = t.post("/v1/tasks", json={"name": "nested", "namespace": NS,
                                  "context": good})
    assert r.status == 201, (r.status, r.body)
    assert r.body["context"] == good, r.body
    # A context that is not an object at all.
    r = t.post("/v1/tasks", json={"name": "nested", "namespace": NS,
                                  "context": []})
    assert r.status in (400, 422), (r.status, r.body)
    assert task_rows(t) == 1


def test_caller_provided_identity_on_a_route(taskerd):
    """A template's own create route takes the key as an Idempotency-Key
    header (its body is the context)."""
    text = tmpl("refunds", "caller_provided") + \
        "routes:\n  create: { path: /refunds }\n"
    t = taskerd(templates={"refunds.yaml": text})
    r = t.post("/refunds", json={"amount": 5})
    assert r.status == 422, (r.status, r.body)
    assert task_rows(t) == 0
    r = t.post("/refunds", json={"amount": 5},
               headers={"Idempotency-Key": "refund-1"})
    assert r.status in (200, 201, 202), (r.status, r.body)
    assert task_rows(t) == 1
    again = t.post("/refunds", json={"amount": 6},
                   headers={"Idempotency-Key": "refund-1"})
    assert again.status == 409, (again.status, again.body)
    assert task_rows(t) == 1
    r = t.post("/refunds", json={"amount": 5},
               headers={"Idempotency-Key": "k" * 256})
    assert r.status == 400, (r.status, r.body)
    assert task_rows(t) == 1
