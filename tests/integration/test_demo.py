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
