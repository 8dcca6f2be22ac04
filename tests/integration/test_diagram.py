"""GET /v1/tasks/{id}/diagram: the task's DAG as Mermaid, with step states."""

import re

DIAMOND = """
name: diamond
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
  - name: c
    handler: noop
    depends_on_step: a
    handler_config: { fail: permanent }
  - name: d
    handler: noop
    depends_on_steps: [b, c]
"""


def test_diagram_shows_edges_and_states(taskerd):
    t = taskerd(templates={"diamond.yaml": DIAMOND})
    tid = t.create_task("diamond", {})["task_id"]
    assert t.wait_task(tid)["status"] == "error"

    r = t.get("/v1/tasks/%d/diagram" % tid)
    assert r.status == 200
    assert r.body["task_id"] == tid        # a number, as everywhere else
    text = r.body["mermaid"]
    lines = text.splitlines()
    assert lines[0] == "graph TD"
    nodes = dict(re.findall(r'^  (s\d+)\["([a-z]+)<br/>', text, re.M))
    assert sorted(nodes.values()) == ["a", "b", "c", "d"]
    ids = {name: node for node, name in nodes.items()}
    edges = set(re.findall(r"^  (s\d+) --> (s\d+)$", text, re.M))
    assert edges == {(ids["a"], ids["b"]), (ids["a"], ids["c"]),
                     (ids["b"], ids["d"]), (ids["c"], ids["d"])}
    # Each node carries its state as text and as a class.
    assert '%s["c<br/>error (1)"]:::error' % ids["c"] in text
    assert '%s["b<br/>complete (1)"]:::complete' % ids["b"] in text
    assert '%s["d<br/>pending (0)"]:::pending' % ids["d"] in text
    assert "classDef error" in text

    assert t.get("/v1/tasks/999999/diagram").status == 404
    assert t.get("/v1/tasks/x/diagram").status == 404
