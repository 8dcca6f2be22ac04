"""With no database configured, taskerd creates and supervises its own
PostgreSQL under state_dir: it runs tasks, keeps them across restarts, and
brings the server back if it dies."""

import os
import shutil
import signal
import tempfile

import harness

HELLO = """
name: hello
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
"""


def postmaster_pid(state_dir):
    with open(os.path.join(state_dir, "pg", "data", "postmaster.pid")) as f:
        return int(f.readline())


def test_embedded_database(taskerd):
    # The server runs as an unprivileged user when we are root: the state
    # directory must be one it can reach (as /var/lib/taskerd is).
    state = tempfile.mkdtemp(prefix="taskerd-state-")
    os.chmod(state, 0o755)
    try:
        t = taskerd(templates={"hello.yaml": HELLO},
                    config={"database": harness.DELETE, "state_dir": state},
                    ready_timeout=60)
        assert os.path.exists(os.path.join(state, "pg", "data",
                                           "PG_VERSION"))
        assert t.log_lines(r'msg="embedded database: creating a cluster"')
        first = t.create_task("hello", {})["task_id"]
        assert t.wait_task(first)["status"] == "complete"

        # The server dies: taskerd starts it again and carries on.
        pm = postmaster_pid(state)
        assert harness.proc_ppid(pm) == t.pid
        os.kill(pm, signal.SIGKILL)
        harness.wait_until(lambda: t.log_lines(
            r'msg="embedded database died"'), 10, message="death noticed")
        second = harness.wait_until(
            lambda: (lambda r: r.body["task_id"] if r.status == 201
                     else None)(t.post("/v1/tasks", json={
                         "name": "hello", "context": {}})),
            30, interval=0.3, message="a task accepted after the restart")
        assert t.wait_task(second)["status"] == "complete"

        # Stopped and started again: the same data, no new cluster.
        assert t.stop() == 0
        assert not os.path.exists(os.path.join(state, "pg", "data",
                                               "postmaster.pid"))
        t._stopped = False
        t.start(ready_timeout=60)
        assert len(t.log_lines(
            r'msg="embedded database: creating a cluster"')) == 1
        assert t.task(first)["status"] == "complete"
        assert t.task(second)["status"] == "complete"
        t.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
