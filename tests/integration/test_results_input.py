"""A step that reads results gets every completed step's, however old.

Steps whose handler cannot read other steps' results (noop; http without
{{steps...}}) are claimed without them, and the claim of a step that can
gathers them from the database (steps completed in earlier batches) and
from the batch that released it.  Here c is claimed by the batch that
completes b, two batches after a: its body must carry both.
"""

import harness

TEMPLATE = """\
name: readers
namespace_name: it
version: 1.0.0
step_templates:
  - name: a
    handler: noop
    handler_config: { results: { n: 7 } }
  - name: b
    handler: noop
    depends_on_step: a
    handler_config: { results: { m: "from b" } }
  - name: c
    handler: http
    depends_on_step: b
    handler_config:
      method: POST
      url: "@SVC@/c"
      body: { n: "{{steps.a.results.n}}", m: "{{steps.b.results.m}}" }
  - name: d
    handler: http
    depends_on_step: c
    handler_config:
      method: POST
      url: "@SVC@/d"
      body: { id: "{{context.id}}" }
"""


def test_reader_gets_old_and_new_results(taskerd, service):
    service.route("POST", "/c", status=200, body={"ok": True})
    service.route("POST", "/d", status=200, body={"ok": True})
    t = taskerd(templates={"r.yaml": TEMPLATE.replace("@SVC@", service.url)})
    ids = [t.create_task("readers", {"id": i}, namespace="it")["task_id"]
           for i in range(5)]
    for tid in ids:
        task = t.wait_task(tid)
        assert task["status"] == "complete", task
        results = {s["name"]: s["results"] for s in task["steps"]}
        assert results["a"] == {"n": 7} and results["b"] == {"m": "from b"}
    bodies = [r.json for r in service.requests_for("/c")]
    assert len(bodies) == 5 and all(b == {"n": 7, "m": "from b"}
                                    for b in bodies), bodies
    assert sorted(r.json["id"] for r in service.requests_for("/d")) == \
        list(range(5))
