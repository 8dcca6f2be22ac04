"""A rolling deploy: two nodes on one database, one with a template
version the other has not loaded yet.

The general claim takes ready steps of any task, so the old node claims
steps of the new version too.  It cannot run them: it hands them back
unstarted (no attempt spent), passes over that template in its claims for
a while, and the new node runs every task to the end.  They used to fail
for good on the old node as unknown_template.
"""

import os

import harness

V1 = """\
name: deploy
namespace_name: roll
version: 1.0.0
step_templates:
  - name: only
    handler: noop
"""

V2 = """\
name: deploy
namespace_name: roll
version: 2.0.0
step_templates:
  - name: only
    handler: noop
    handler_config: { sleep_ms: 200 }
"""


def test_old_node_leaves_new_version_to_the_new_node(taskerd):
    new = taskerd(templates={"v1.yaml": V1, "v2.yaml": V2}, workers=1,
                  config={"scheduler": {"prefetch": 0}})
    old = taskerd(templates={"v1.yaml": V1}, workers=2, db=new.db)
    ids = [new.create_task("deploy", {"n": i}, namespace="roll",
                           version="2.0.0")["task_id"] for i in range(6)]
    for tid in ids:
        task = new.wait_task(tid, timeout=30)
        assert task["status"] == "complete", task
        assert task["steps"][0]["attempts"] == 1, task["steps"]
    # The old node did look at them (else this test shows nothing).
    assert old.log_lines("step of a template this node does not have"), \
        old.log_tail(30)
    assert "unknown_template" not in old.log()
    # And it still runs what it has.
    tid = old.create_task("deploy", {}, namespace="roll",
                          version="1.0.0")["task_id"]
    assert old.wait_task(tid)["status"] == "complete"


# The old node's version has a program only the old node has.
OLD_ONLY = """\
name: roll
namespace_name: rd
version: 1.0.0
step_templates:
  - name: first
    handler: noop
    handler_config: { sleep_ms: 200 }
  - name: second
    handler: exec
    depends_on_step: first
    handler_config: { command: [./charge_v1.py] }
"""

SCRIPT = """#!/usr/bin/python3
import json, sys
json.load(sys.stdin)
print(json.dumps({"by": "%s"}))
"""


def test_new_node_leaves_the_old_version_to_the_old_node(taskerd):
    """The new node's files hold only v2; the old node, alive, has v1 and
    its program.  The new node hands v1's steps back to it rather than
    load v1 as stored and fail them (the program is not on the new node:
    exec_failed)."""
    old = taskerd(templates={"roll.yaml": OLD_ONLY}, workers=1,
                  config={"scheduler": {"prefetch": 0}})
    path = os.path.join(old.config["templates"]["dir"], "charge_v1.py")
    with open(path, "w") as f:
        f.write(SCRIPT % "old")
    os.chmod(path, 0o755)
    new = taskerd(templates={"roll.yaml": OLD_ONLY.replace(
        "1.0.0", "2.0.0").replace("charge_v1", "charge_v2")}, workers=2,
        db=old.db)
    ids = [old.create_task("roll", {"n": i}, namespace="rd")["task_id"]
           for i in range(20)]
    for tid in ids:
        task = old.wait_task(tid, timeout=60)
        assert task["status"] == "complete", task
        assert harness.steps_by_name(task)["second"]["results"] == \
            {"by": "old"}, task
    assert not new.log_lines("loaded as stored"), new.log_tail(20)
    assert new.log_lines("step of a template this node does not have"), \
        "the new node never claimed a v1 step: the test shows nothing"
