"""Running as a system service: sd_notify (READY, STATUS, WATCHDOG,
STOPPING), graceful SIGTERM with running steps, and unprivileged workers."""

import os
import signal
import tempfile
import threading
import time

import pytest

import harness

SLOW = """
name: slow
step_templates:
  - name: work
    handler: noop
    handler_config: { sleep_ms: 1500 }
  - name: after
    handler: noop
    depends_on_step: work
"""


def test_notify_ready_watchdog_stopping(taskerd, notify_socket, monkeypatch):
    sock, path = notify_socket
    harness.notify_env(monkeypatch, path, watchdog_usec=600000)
    t = taskerd(templates={"slow.yaml": SLOW}, start=False)
    t.start()
    got = harness.notify_messages(sock, 2.0)
    texts = [m for _, m in got]
    assert "READY=1" in texts, texts
    # READY=1 comes once, before any watchdog ping; when it was sent the
    # listener was bound (we could ask /health/ready right after start()).
    assert texts.count("READY=1") == 1
    # WATCHDOG=1 every half interval (300 ms): several within 2 s.
    pings = [at for at, m in got if m == "WATCHDOG=1"]
    assert len(pings) >= 4, texts
    assert any(m.startswith("STATUS=workers 2/2 up") for m in texts), texts
    # Migrating the fresh database, the start asked for more time first:
    # a migration may rewrite a big table.
    first = texts.index("STATUS=applying migration 001_schema\n"
                        "EXTEND_TIMEOUT_USEC=180000000")
    assert first < texts.index("READY=1"), texts
    # Workers never see the notification socket.
    for pid in harness.proc_children(t.pid):
        with open("/proc/%d/environ" % pid, "rb") as f:
            assert b"NOTIFY_SOCKET=" not in f.read()

    t.proc.send_signal(signal.SIGTERM)
    got = harness.notify_messages(sock, 1.0)
    assert "STOPPING=1" in [m for _, m in got]
    assert t.proc.wait(10) == 0


def test_reload_before_ready_tells_systemd_nothing(taskerd, notify_socket,
                                                  monkeypatch):
    """SIGHUP while the start is not done (here no worker can start):
    neither RELOADING=1 nor READY=1, which would tell systemd that the
    start is over."""
    sock, path = notify_socket
    harness.notify_env(monkeypatch, path)
    t = taskerd(templates={"slow.yaml": SLOW}, start=False,
                config={"workers.path": "/bin/false"})
    with pytest.raises(AssertionError, match="not ready"):
        t.start(ready_timeout=2)
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates unchanged"), 10,
                       message="the reload done")
    texts = [m for _, m in harness.notify_messages(sock, 0.5)]
    assert "READY=1" not in texts and "RELOADING=1" not in texts, texts


def test_embedded_server_never_sees_the_notify_socket(taskerd, notify_socket,
                                                      monkeypatch):
    """The embedded PostgreSQL would tell systemd READY=1 and STOPPING=1
    on taskerd's socket as if it were taskerd."""
    sock, path = notify_socket
    harness.notify_env(monkeypatch, path)
    state = tempfile.mkdtemp(prefix="taskerd-state-")
    os.chmod(state, 0o755)
    try:
        t = taskerd(templates={"slow.yaml": SLOW}, ready_timeout=60,
                    config={"database": harness.DELETE, "state_dir": state})
        with open(os.path.join(state, "pg", "data", "postmaster.pid")) as f:
            pm = int(f.readline())
        assert harness.proc_ppid(pm) == t.pid
        with open("/proc/%d/environ" % pm, "rb") as f:
            assert b"NOTIFY_SOCKET=" not in f.read()
        texts = [m for _, m in harness.notify_messages(sock, 0.5)]
        assert t.stop() == 0
    finally:
        import shutil
        shutil.rmtree(state, ignore_errors=True)


def test_sigterm_lets_running_steps_finish(taskerd, pg):
    t = taskerd(templates={"slow.yaml": SLOW}, workers=2)
    ids = [t.create_task("slow", {})["task_id"] for _ in range(4)]
    harness.wait_until(lambda: sum(1 for w in t.workers()
                                   if w["state"] == "busy") == 2,
                       10, message="two steps running")
    started = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    assert t.proc.wait(15) == 0
    assert time.monotonic() - started < 12
    t._stopped = True
    t.stop()

    # The two running steps finished during the drain; nothing is left
    # claimed (in progress) in the database.
    rows = pg.json(t.db, "select name, status, attempts from steps "
                   "where name = 'work' order by id")
    assert sum(1 for r in rows if r["status"] == "complete") >= 2, rows
    assert all(r["attempts"] <= 1 for r in rows), rows
    assert pg.scalar(t.db, "select count(*) from steps where status = "
                     "'in_progress'") == "0"

    # Started again on the same database, every task completes, and no
    # step ever had two attempts running at once.
    t._stopped = False
    t.start()
    for tid in ids:
        assert t.wait_task(tid, timeout=30)["status"] == "complete"
    hist = pg.json(t.db, "select step_id, to_state from step_transitions "
                   "order by id")
    running = set()
    for h in hist:
        if h["to_state"] == "in_progress":
            assert h["step_id"] not in running, "overlapping attempts"
            running.add(h["step_id"])
        else:
            running.discard(h["step_id"])


def test_ctrl_c_in_a_terminal_drains(taskerd, pg):
    """Ctrl-C in the terminal that runs taskerd signals its whole process
    group.  The supervisor drains as on SIGTERM; the workers, in groups of
    their own, are not hit, and the running step finishes."""
    t = taskerd(templates={"slow.yaml": SLOW}, workers=2, start=False)
    t.own_group = True
    t.start()
    tid = t.create_task("slow", {})["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy" for w in t.workers()),
                       10, message="the step running")
    os.killpg(t.pid, signal.SIGINT)
    assert t.proc.wait(15) == 0
    t._stopped = True
    t.stop()
    rows = pg.json(t.db, "select status, attempts from steps where "
                   "task_id = %d and name = 'work'" % tid)
    assert rows == [{"status": "complete", "attempts": 1}], rows
    assert "worker died" not in t.log(), t.log_tail(30)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_workers_run_as_configured_user(taskerd):
    t = taskerd(templates={"slow.yaml": SLOW},
                config={"workers": {"user": "nobody"}})
    pids = harness.proc_children(t.pid)
    assert pids
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Uid"].split()[1] == "65534"     # effective uid
        assert status["NoNewPrivs"].strip() == "1"
    tid = t.create_task("slow", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"


def test_claim_answered_during_the_drain_is_handed_back(taskerd, pg):
    """A creation that claims its task's first step for this node is still
    in flight (held up by a lock) when SIGTERM comes: the node waits for
    it, hands the claim back, and only then exits; the step is left for
    whichever node runs next, not 'enqueued' for one that is gone."""
    quick = "name: quick\nstep_templates:\n  - name: only\n    handler: noop\n"
    t = taskerd(templates={"quick.yaml": quick}, workers=1)
    holder = pg.psql_background(t.db, "BEGIN; LOCK TABLE steps IN SHARE "
                                "MODE; SELECT pg_sleep(2); COMMIT;")
    answers = []
    try:
        harness.wait_until(lambda: pg.scalar(
            t.db, "select count(*) from pg_locks where relation = "
            "'steps'::regclass and mode = 'ShareLock' and granted") == "1",
            5, message="the lock taken")
        poster = threading.Thread(target=lambda: answers.append(t.post(
            "/v1/tasks", json={"name": "quick", "context": {}}, timeout=15)))
        poster.start()
        harness.wait_until(lambda: pg.scalar(
            t.db, "select count(*) from pg_stat_activity where wait_event_type"
            " = 'Lock' and application_name = '%s'" % t.config["node_id"])
            == "1", 5, message="the creation waiting for the lock")
        t.proc.send_signal(signal.SIGTERM)
        assert t.proc.wait(15) == 0
        poster.join(15)
    finally:
        holder.wait(10)
    t._stopped = True
    t.stop()
    assert answers and answers[0].status == 201, answers
    rows = pg.json(t.db, "select status, lease_owner from steps")
    assert rows == [{"status": "pending", "lease_owner": None}], rows
