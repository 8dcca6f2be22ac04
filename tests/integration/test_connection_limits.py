"""More clients than taskerd has descriptors for."""

import os
import signal
import socket

import harness

TEMPLATES = {
    "quick.yaml": """\
name: quick
namespace_name: limits
version: 1.0.0
step_templates:
  - name: only
    handler: noop
""",
}


def test_accepts_pause_when_descriptors_run_out(taskerd, pg):
    """A hundred clients, 64 descriptors: accept() fails with EMFILE and
    the connection stays in the backlog.  libevent called again at once -
    a loop at full CPU, printing "[warn] Error from accept() call" each
    time (856,784 lines in 2 s here, none of them a log event).  Accepts
    pause a moment at a time instead, said in one warning, and a client
    waiting in the backlog is answered once descriptors are free."""
    t = taskerd(templates=TEMPLATES, db=pg.createdb(), workers=1,
                start=False)
    t.launcher = ["prlimit", "--nofile=64:64", "--"]
    t.start(ready_timeout=30)
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection((t.host, t.port),
                                                  timeout=10))
        harness.wait_until(lambda: t.log_lines("cannot accept connections"),
                           10, message="the failed accepts said")
        # The last client waits in the backlog; the others go.
        last = socks.pop()
        last.sendall(b"GET /health/live HTTP/1.1\r\nHost: taskerd\r\n"
                     b"Connection: close\r\n\r\n")
        for s in socks:
            s.close()
        socks = [last]
        answer = last.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        for s in socks:
            s.close()

    said = t.log_lines("cannot accept connections")
    assert len(said) == 1, said
    assert "Too many open files" in said[0], said
    assert not t.log_lines(r"^\[warn\]")
    harness.assert_logfmt(t.log())
    assert t.get("/health/live").status == 200


def test_the_soft_limit_is_raised_for_taskerd_alone(taskerd, pg):
    """Started with a soft limit of 64 and a hard one of 4096 (systemd
    gives 1024 and 524288): taskerd raises its own to the hard limit, so
    a hundred clients are all taken at once; its workers, and what they
    run, get the 64 back (a program that waits with select() breaks on
    descriptors past 1023)."""
    t = taskerd(templates=TEMPLATES, db=pg.createdb(), workers=1,
                start=False)
    t.launcher = ["prlimit", "--nofile=64:4096", "--"]
    t.start(ready_timeout=30)
    assert t.log_lines("max_open_files=4096"), t.log_tail(20)
    assert harness.proc_soft_nofile(t.pid) == 4096
    workers = harness.proc_children(t.pid)
    assert workers, "no worker"
    assert all(harness.proc_soft_nofile(w) == 64 for w in workers)

    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection((t.host, t.port),
                                                  timeout=10))
        for s in socks:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: taskerd\r\n\r\n")
        for s in socks:
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        # A worker started while taskerd holds more descriptors than 64
        # opens its own (/dev/null for stdout) before it gets the 64 back:
        # it kept taskerd's log as its stdout.
        os.kill(workers[0], signal.SIGKILL)
        again = harness.wait_until(
            lambda: [w for w in harness.proc_children(t.pid)
                     if w not in workers and harness.proc_cmdline(w)[:1]
                     and harness.proc_cmdline(w)[0].endswith(
                         "taskerd-worker")], 10, message="a new worker")
        assert harness.proc_soft_nofile(again[0]) == 64
        assert os.readlink("/proc/%d/fd/1" % again[0]) == "/dev/null"
    finally:
        for s in socks:
            s.close()
    assert not t.log_lines("cannot accept connections")
