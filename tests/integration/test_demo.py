"""The README's first command, `scripts/demo`, runs its example to the end
(`--once`: one task, then everything it started is stopped and removed)."""

import subprocess

import harness


def test_demo_once():
    harness.require_binaries()
    port = harness.free_port()
    env = harness.clean_env({"TASKERD_SKIP_DEPS": "1",
                             "TASKERD_DEMO_PORT": str(port)})
    r = subprocess.run([str(harness.REPO / "scripts" / "demo"), "--once"],
                       cwd=str(harness.REPO), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "scripts/demo --once exited %d:\n%s" % (r.returncode, out)
    assert "is complete" in out, out
    assert "stopped and cleaned up" in out, out
    # Nothing left listening on the demo's port.
    try:
        harness.http_request("127.0.0.1", port, "GET", "/health/live", timeout=1)
        listening = True
    except OSError:
        listening = False
    assert not listening, "taskerd still answers on port %d after the demo" % port


def test_demo_on_a_busy_port_says_so(taskerd):
    """A demo left serving holds the port: a second one used to send its
    requests to the first one's taskerd and report success."""
    harness.require_binaries()
    t = taskerd()
    env = harness.clean_env({"TASKERD_SKIP_DEPS": "1",
                             "TASKERD_DEMO_PORT": str(t.port)})
    r = subprocess.run([str(harness.REPO / "scripts" / "demo"), "--once"],
                       cwd=str(harness.REPO), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "port %d is in use" % t.port in r.stderr, r.stderr
    assert "stopped and cleaned up" in r.stdout, r.stdout
    assert t.get("/v1/tasks").body["tasks"] == []       # nothing sent to it
