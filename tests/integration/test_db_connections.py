"""The node's database connections: how it comes up, and what a
connection must have done before it is used."""

import time

import harness
from pgproxy import PgProxy

NS = "conns"

TEMPLATES = {
    "slow.yaml": """\
name: slow
namespace_name: conns
version: 1.0.0
step_templates:
  - name: only
    handler: noop
    handler_config: { sleep_ms: 3000 }
""",
    "quick.yaml": """\
name: quick
namespace_name: conns
version: 1.0.0
step_templates:
  - name: only
    handler: noop
""",
}


def step(t, tid):
    return t.task(tid)["steps"][0]


def test_ready_when_the_database_comes_after_the_workers(taskerd, pg,
                                                        notify_socket,
                                                        monkeypatch):
    """A database that answers slower than the workers start (here 200 ms
    a message): systemd hears READY=1 once it is connected.  It never did:
    readiness was looked at only when a worker said hello, and a start
    under systemd timed out and was killed."""
    db = pg.createdb()
    taskerd(templates=TEMPLATES, db=db).stop()      # (migrated at full speed)
    proxy = PgProxy(pg)
    try:
        sock, path = notify_socket
        harness.notify_env(monkeypatch, path)
        proxy.delay = 0.2
        t = taskerd(templates=TEMPLATES, db=db, start=False,
                    config={"database.dsn": proxy.dsn(db)})
        t.start(ready_timeout=60)
        texts = [m for _, m in harness.notify_messages(sock, 3.0)]
        assert "READY=1" in texts, texts
        assert t.log_lines('msg="taskerd ready"'), t.log_tail(30)
        proxy.delay = 0
    finally:
        proxy.close()


def test_a_connection_whose_first_statements_fail_is_not_used(taskerd, pg):
    """The listening connection's LISTEN fails (a standby refuses it): the
    connection is dropped and made again, rather than kept up without
    listening - after which no cancel was ever heard, and steps queued for
    a cancelled task started."""
    proxy = PgProxy(pg)
    try:
        db = pg.createdb()
        proxy.rewrite = (b"LISTEN taskerd_cancel", b"LISTEM taskerd_cancel")
        t = taskerd(workers=1, templates=TEMPLATES, db=db,
                    config={"database.dsn": proxy.dsn(db)})
        assert proxy.rewrite is None, "no LISTEN went through the proxy"
        harness.wait_until(lambda: t.log_lines("its first statements "
                                               "failed"), 10,
                           message="the failed LISTEN said")
        busy = t.create_task("slow", {}, namespace=NS)["task_id"]
        harness.wait_until(lambda: step(t, busy)["status"] == "in_progress",
                           10, message="the worker busy")
        queued = t.create_task("quick", {}, namespace=NS)["task_id"]
        harness.wait_until(lambda: step(t, queued)["status"] == "enqueued",
                           10, message="claimed, queued")
        r = t.request("DELETE", "/v1/tasks/%s" % queued, json={})
        assert r.status == 200, r.body
        s = harness.wait_until(
            lambda: (lambda x: x if x["status"] == "cancelled" else None)(
                step(t, queued)), 2, message="the queued step cancelled "
            "at once, not after the busy one")
        assert s["attempts"] == 0, s
        assert t.wait_task(busy, timeout=20)["status"] == "complete"
        time.sleep(0.3)
        assert step(t, queued)["attempts"] == 0
    finally:
        proxy.close()
