"""A node id is one node's.  A second taskerd started with the id of a
node that runs (a copied node_id, two instances on one unix socket path)
would take that node's claims for its own at start and run its steps a
second time; it refuses to start instead, once it has seen the lease
renewed.  A node restarted after a crash does not wait for its old lease
when the process that held it is gone."""

import os
import socket
import subprocess

import pytest

import harness

QUICK = "name: quick\nstep_templates:\n  - name: only\n    handler: noop\n"
SLOW = """\
name: slow
step_templates:
  - name: only
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""


def test_second_node_with_the_same_id_refuses_to_start(taskerd):
    first = taskerd(templates={"slow.yaml": SLOW},
                    config={"scheduler": {"lease": "2s"}})
    tid = first.create_task("slow", {})["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy"
                                   for w in first.workers()),
                       10, message="the step running")
    second = taskerd(templates={"slow.yaml": SLOW}, db=first.db, start=False,
                     config={"scheduler": {"lease": "2s"},
                             "node_id": first.config["node_id"]})
    with pytest.raises(AssertionError, match="exited with 1"):
        second.start(ready_timeout=15)
    assert second.log_lines("is in use by a live node"), second.log_tail(10)
    # The first node's step ran once, to its end.
    task = first.wait_task(tid, timeout=15)
    assert task["status"] == "complete" and \
        task["steps"][0]["attempts"] == 1, task


def test_restart_after_a_crash_does_not_wait(taskerd):
    t = taskerd(templates={"quick.yaml": QUICK},
                config={"scheduler": {"lease": "1h"}})
    tid = t.create_task("quick", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    t.kill()
    t.start(ready_timeout=10)       # not an hour
    assert not t.log_lines("node id still leased")


def test_unix_socket_in_use_is_not_taken(taskerd, pg, tmp_path):
    """A unix socket path something still answers on is not unlinked and
    taken over: the new taskerd says so and exits."""
    path = str(tmp_path / "api.sock")
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(path)
        holder.listen(1)
        factory = harness.TaskerdFactory(pg)
        try:
            t = factory(templates={"quick.yaml": QUICK}, start=False,
                        config={"http.listen": "127.0.0.1:1"})
            cfg = dict(t.config, http=dict(t.config["http"],
                                           listen="unix:" + path))
            conf = os.path.join(t.workdir, "unix.yaml")
            with open(conf, "w") as f:
                f.write(harness.to_yaml(cfg) + "\n")
            r = subprocess.run([harness.taskerd_bin(), "-c", conf],
                               env=harness.clean_env(), timeout=60,
                               stdin=subprocess.DEVNULL,
                               capture_output=True, text=True)
        finally:
            factory.cleanup()
        assert r.returncode == 1, r.stderr[-2000:]
        assert "in use by another process" in r.stderr, r.stderr[-2000:]
        assert os.path.exists(path)
    finally:
        holder.close()
