"""What does not fit in a worker's frame (workers.max_frame) fails the step
once, saying why; it is not a worker crash retried attempt after attempt.

- A step's input (its task's context and the results it reads) too large
  to send: the step fails for good with input_too_large; no worker dies.
- A handler's outcome too large to send back: the step did run (the
  service was called once) and fails for good with results_too_large.
- Results set by an operator are held to the same nesting limit as a
  handler's (they end up in the children's input).
- Results whose values would take far more memory decoded than their
  bytes (600,000 empty objects: 1.8 MB of JSON, some 150 MB in the
  supervisor) fail the step the same way, inside max_frame.
"""

import harness

NS = "frames"
CONFIG = {"workers.max_frame": "64KiB", "http.max_body": "1MiB"}


def template(name, steps):
    return ("name: %s\nnamespace_name: %s\nversion: 1.0.0\nstep_templates:\n"
            % (name, NS)) + steps


def only_step(t, task_id):
    steps = t.task(task_id)["steps"]
    assert len(steps) == 1, steps
    return steps[0]


def test_input_too_large(taskerd):
    t = taskerd(templates={"big.yaml": template("big", """\
  - name: only
    handler: noop
    default_retry_limit: 3
""")}, config=CONFIG)
    task = t.create_task("big", {"pad": "x" * (100 * 1024)}, namespace=NS)
    done = t.wait_task(task["task_id"])
    assert done["status"] == "error", done
    s = only_step(t, task["task_id"])
    assert s["status"] == "error" and s["attempts"] == 1, s
    assert s["last_error"]["code"] == "input_too_large", s
    assert "workers.max_frame" in s["last_error"]["message"], s
    assert "worker died" not in t.log()
    assert t.log_lines("step input too large"), t.log_tail(40)


def test_results_too_large(taskerd, service):
    service.route("POST", "/big", status=200, body={"pad": "y" * (100 * 1024)})
    t = taskerd(templates={"bigout.yaml": template("bigout", """\
  - name: only
    handler: http
    default_retry_limit: 3
    handler_config:
      method: POST
      url: "%s/big"
      body: { q: 1 }
""" % service.url)}, config=CONFIG)
    task = t.create_task("bigout", {}, namespace=NS)
    done = t.wait_task(task["task_id"])
    assert done["status"] == "error", done
    s = only_step(t, task["task_id"])
    assert s["status"] == "error" and s["attempts"] == 1, s
    assert s["last_error"]["code"] == "results_too_large", s
    # The call was made once and is not repeated.
    assert len(service.requests_for("/big")) == 1
    assert "worker died" not in t.log()
    assert "protocol error" not in t.log()


def test_results_of_too_many_values(taskerd, service):
    service.route("POST", "/heavy", status=200, body=[{}] * 600000)
    t = taskerd(templates={"heavy.yaml": template("heavy", """\
  - name: only
    handler: http
    default_retry_limit: 3
    handler_config: { method: POST, url: "%s/heavy" }
""" % service.url)}, config={"workers.max_frame": "16MiB"})
    task = t.create_task("heavy", {}, namespace=NS)
    done = t.wait_task(task["task_id"], timeout=60)
    assert done["status"] == "error", done
    s = only_step(t, task["task_id"])
    assert s["status"] == "error" and s["attempts"] == 1, s
    assert s["last_error"]["code"] == "results_too_large", s
    assert "too many values" in s["last_error"]["message"], s
    assert len(service.requests_for("/heavy")) == 1
    assert "worker died" not in t.log()
    assert "protocol error" not in t.log()


def test_input_of_too_many_values(taskerd):
    """The same for a step's input: a context of 600,000 empty objects,
    inside max_frame, fails the step once (input_too_large), and no
    worker dies of it."""
    t = taskerd(templates={"wide.yaml": template("wide", """\
  - name: only
    handler: noop
    default_retry_limit: 3
""")}, config={"workers.max_frame": "16MiB", "http.max_body": "4MiB"})
    task = t.create_task("wide", {"pad": [{}] * 600000}, namespace=NS)
    done = t.wait_task(task["task_id"], timeout=60)
    assert done["status"] == "error", done
    s = only_step(t, task["task_id"])
    assert s["attempts"] == 1, s
    assert s["last_error"]["code"] == "input_too_large", s
    assert "too many values" in s["last_error"]["message"], s
    assert "worker died" not in t.log()
    assert "protocol error" not in t.log()


def test_operator_results_nesting(taskerd):
    t = taskerd(templates={"pair.yaml": template("pair", """\
  - name: first
    handler: noop
    handler_config: { sleep_ms: 3000 }
  - name: second
    handler: noop
    depends_on_step: first
""")}, config=CONFIG)
    task = t.create_task("pair", {}, namespace=NS)
    deep = {}
    for _ in range(30):
        deep = {"d": deep}
    r = t.patch("/v1/tasks/%s/steps/second" % task["task_id"],
                json={"action": "complete_manually", "reason": "test",
                      "results": deep})
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert "nested deeper" in err["message"], err
    steps = {s["name"]: s for s in t.task(task["task_id"])["steps"]}
    assert steps["second"]["status"] == "pending", steps
    # Within the limit it is taken.
    shallow = {"a": {"b": {"c": 1}}}
    r = t.patch("/v1/tasks/%s/steps/second" % task["task_id"],
                json={"action": "complete_manually", "reason": "test",
                      "results": shallow})
    assert r.status == 200, r.body
    assert t.wait_task(task["task_id"])["status"] == "complete"


def test_tags_nesting(taskerd):
    """Tags nested deeper than any JSON taskerd takes in are refused, and
    nothing is created: every listing carries a task's tags, and one
    tag deep enough broke listing for every client (jansson's limit in
    tasker-ctl, Python's far below)."""
    t = taskerd(templates={"one.yaml": template("one", """\
  - name: only
    handler: noop
""")}, config=CONFIG)
    deep = []
    for _ in range(30):
        deep = [deep]
    r = t.post("/v1/tasks", json={"namespace": NS, "name": "one",
                                  "context": {}, "tags": deep})
    err = harness.assert_json_error(r, 400, "invalid_request")
    assert "tags" in err["message"] and "nested deeper" in err["message"], err
    assert t.get("/v1/tasks").body["tasks"] == []
    r = t.post("/v1/tasks", json={"namespace": NS, "name": "one",
                                  "context": {}, "tags": [[["ok"]]]})
    assert r.status == 201, r.body
    assert t.get("/v1/tasks").body["tasks"][0]["tags"] == [[["ok"]]]
