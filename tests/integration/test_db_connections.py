"""The node's database connections: how it comes up, and what a
connection must have done before it is used."""

import re
import subprocess
import threading
import time

import pytest

import harness
import pgproxy
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
        # (Ready needs a pool connection, not yet the listening one.)
        harness.wait_until(lambda: proxy.rewrite is None, 10,
                           message="a LISTEN through the proxy")
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


def test_a_connection_ended_as_it_is_made(taskerd, pg):
    """A server stopping just as a connection's startup ends (a restart,
    a failover) sends its FATAL right after the ReadyForQuery, and libpq
    reads both at once.  It printed the FATAL raw on stderr - a line that
    is no log event, for whatever parses the log - because the connection
    was not yet taskerd's to give a notice processor.  It is a logged
    notice now, and the connection is made again: the start's (its
    migration failed on it, ending the start) and the pool's."""
    proxy = PgProxy(pg)
    try:
        db = pg.createdb()
        proxy.end_startups = 1      # the start's connection, the first
        t = taskerd(templates=TEMPLATES, db=db, ready_timeout=60,
                    config={"database.dsn": proxy.dsn(db)})
        assert proxy.ended == 1
        assert t.log_lines("database not reachable, retrying"), \
            t.log_tail(20)

        proxy.end_startups = 2      # two of the pool's, made again
        pg.execute(db, "SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")
        harness.wait_until(lambda: proxy.ended == 3, 20,
                           message="two pool connections ended as made")
        # (Until the pool is back, after a short backoff, a task is
        # refused with a 503 that says nothing was created.)
        tid = harness.wait_until(lambda: (lambda r: r.body["task_id"] if
                                          r.status == 201 else None)(
            t.post("/v1/tasks", json={"name": "quick", "namespace": NS,
                                      "context": {}})), 10,
            message="a task made once the pool is back")
        assert t.wait_task(tid)["status"] == "complete"

        harness.assert_logfmt(t.log())
        made = t.log_lines(re.escape(
            pgproxy.END_STARTUP_MESSAGE.decode()))
        assert len(made) == 3, made
        assert all('msg="database notice"' in line for line in made), made
    finally:
        proxy.close()


SLOW_LOOKUP = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

/* "localhost" takes 2 s to look up, as with a resolver that is slow. */
int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **) = (int (*)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT,
	    "getaddrinfo");

	if (node != NULL && strcmp(node, "localhost") == 0)
		sleep(2);
	return real(node, service, hints, res);
}
"""


def test_reconnects_do_not_wait_for_name_lookups(taskerd, pg, tmp_path,
                                                 monkeypatch):
    """A database named by host name, and a resolver that takes 2 s: the
    node's reconnects look it up off its loop, which goes on answering
    (each lookup stalled everything - API, pings, deadlines, heartbeat -
    for as long as it took)."""
    src = tmp_path / "slowlookup.c"
    src.write_text(SLOW_LOOKUP)
    lib = tmp_path / "slowlookup.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src),
                    "-ldl"], check=True)
    base = harness.clean_env

    def slow(more=None):
        env = base(more)
        env["LD_PRELOAD"] = str(lib)
        # (A sanitized build wants its runtime first: it is not.)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":verify_asan_link_order=0").lstrip(":")
        return env
    monkeypatch.setattr(harness, "clean_env", slow)
    proxy = PgProxy(pg, tcp=True)
    try:
        db = pg.createdb()
        t = taskerd(templates=TEMPLATES, db=db, ready_timeout=60,
                    config={"database.dsn": proxy.dsn(db)})
        pg.execute(db, "SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")
        worst, end = 0.0, time.monotonic() + 5
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = t.get("/health/live", timeout=10)
            assert r.status == 200, r.body
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.05)
        assert worst < 1.0, "the loop stalled %.1f s" % worst
        # And the connections came back.
        harness.wait_until(lambda: t.get("/health/ready").status == 200, 20,
                           message="connected again")
        tid = t.create_task("quick", {}, namespace=NS)["task_id"]
        assert t.wait_task(tid, timeout=20)["status"] == "complete"
    finally:
        proxy.close()


def test_an_empty_pgconnect_timeout_is_no_timeout_setting(taskerd,
                                                          monkeypatch):
    """PGCONNECT_TIMEOUT set to nothing is as good as unset: libpq would
    refuse "" as connect_timeout, and every connection would fail."""
    t = taskerd(templates=TEMPLATES, start=False)
    base = harness.clean_env
    monkeypatch.setattr(harness, "clean_env", lambda more=None: dict(
        base(more), PGCONNECT_TIMEOUT=""))
    t.start()
    monkeypatch.setattr(harness, "clean_env", base)
    tid = t.create_task("quick", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid, timeout=20)["status"] == "complete"


def test_sessions_are_named_in_pg_stat_activity(taskerd, pg):
    """A DBA tells taskerd's sessions apart from others: "taskerd" for the
    pool's, "taskerd listener" for the one that LISTENs (it sits idle on
    purpose); a DSN's own application_name wins."""
    db = pg.createdb()
    t = taskerd(templates=TEMPLATES, db=db,
                config={"database.dsn": pg.dsn(db), "database.pool": 3})

    def names():
        return sorted(r[0] for r in pg.query(
            db, "SELECT application_name FROM pg_stat_activity WHERE "
            "datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"))     # (not autovacuum)
    harness.wait_until(lambda: len(names()) == 4, 10,
                       message="the node's four sessions")
    assert names() == ["taskerd"] * 3 + ["taskerd listener"], names()
    named = taskerd(templates=TEMPLATES, db=pg.createdb(), config={
        "database.pool": 3})      # the harness's DSN names its node
    assert pg.scalar(named.db, "SELECT string_agg(DISTINCT "
                     "application_name, ',') FROM pg_stat_activity WHERE "
                     "datname = current_database() AND pid <> "
                     "pg_backend_pid() AND backend_type = 'client backend'"
                     ) == named.config["node_id"]


def test_the_lease_holds_while_every_pool_connection_waits(taskerd, pg):
    """Listings (a dashboard's) hold every pool connection on a lock for
    longer than the node's lease.  The heartbeat has a connection of its
    own, so the lease holds and the step a worker runs is left to finish,
    once.  It lapsed: the heartbeat queued behind the listings, and the
    running step was stopped."""
    templates = dict(TEMPLATES)
    templates["long.yaml"] = TEMPLATES["slow.yaml"].replace(
        "name: slow", "name: long").replace("3000", "8000")
    t = taskerd(templates=templates, workers=1,
                config={"scheduler": {"lease": "2s"},
                        "database": {"pool": 2, "lock_timeout": "8s"}})
    tid = t.create_task("long", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: step(t, tid)["status"] == "in_progress", 10,
                       message="the long step running")

    locker = pg.psql_background(
        t.db, "BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE; "
              "SELECT pg_sleep(5); COMMIT;")
    harness.wait_until(lambda: pg.scalar(t.db, (
        "SELECT count(*) FROM pg_locks WHERE relation = 'tasks'::regclass "
        "AND mode = 'AccessExclusiveLock' AND granted")) == "1", 5,
        message="the lock taken")
    answers = []
    listers = [threading.Thread(target=lambda: answers.append(
        t.get("/v1/tasks", timeout=20).status)) for _ in range(4)]
    for th in listers:
        th.start()
    for th in listers:
        th.join()
    assert locker.wait(timeout=10) == 0
    assert answers == [200] * 4, answers

    done = t.wait_task(tid, timeout=20)
    assert done["status"] == "complete", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert not t.log_lines("node lease lapsed"), t.log_tail(40)


RUN_ONCE = """\
name: once
namespace_name: conns
version: 1.0.0
step_templates:
  - name: only
    handler: noop
    retryable: false
    handler_config: { sleep_ms: 15000 }
"""


def test_a_stalled_heartbeat_connection_is_given_up_in_time(taskerd, pg):
    """The answer to one renewal of the lease never comes (a half-open
    connection, a dropped NAT entry): every other connection is fine.
    The renewal is given up after a quarter of a lease and sent again on
    another connection, so the lease holds and a step that must not run
    twice runs once.  The connection used to be waited on for 35 s, the
    lease lapsed at 10 s, and the step was stopped: the task ended in
    error."""
    boot = open("/proc/sys/kernel/random/boot_id").read().strip().encode()
    proxy = PgProxy(pg)
    try:
        db = pg.createdb()
        t = taskerd(workers=1, templates={"once.yaml": RUN_ONCE}, db=db,
                    config={"database.dsn": proxy.dsn(db)})
        tid = t.create_task("once", {}, namespace=NS)["task_id"]
        harness.wait_until(lambda: step(t, tid)["status"] == "in_progress",
                           10, message="the step running")
        # The boot id is in the renewal's parameters, and in nothing else.
        proxy.lose_answer_to(boot, hold=30)
        harness.wait_until(lambda: t.log_lines(r"no answer from the "
                                               r"database in \d+ ms"), 20,
                           message="the stalled renewal given up")
        done = t.wait_task(tid, timeout=40)
        assert done["status"] == "complete", done
        assert done["steps"][0]["attempts"] == 1, done["steps"]
        assert not t.log_lines("lease lapsed"), t.log_tail(30)
    finally:
        proxy.close()


def test_a_slow_database_keeps_the_lease(taskerd, pg):
    """Each renewal takes 3 s (a database slow to commit, here a trigger
    that sleeps): under a third of the 10 s lease, which it keeps.  A
    renewal is not given up while it may still come in time."""
    db = pg.createdb()
    t = taskerd(workers=1, templates={"once.yaml": RUN_ONCE}, db=db)
    tid = t.create_task("once", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: step(t, tid)["status"] == "in_progress",
                       10, message="the step running")
    pg.execute(db, """
        CREATE FUNCTION slow_beat() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
        CREATE TRIGGER slow_beat BEFORE UPDATE ON nodes
          FOR EACH ROW EXECUTE FUNCTION slow_beat();""")
    done = t.wait_task(tid, timeout=40)
    assert done["status"] == "complete", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert not t.log_lines("lease lapsed"), t.log_tail(30)
    assert not t.log_lines("no answer from the database"), t.log_tail(30)


def test_a_connection_the_server_ended_is_no_refusal(request):
    """A FATAL the server sent on an idle connection (idle_session_timeout
    here; a terminated backend, a shutdown) is the connection's end, not
    the statements' fault: the outcome batch that meets it is sent again
    and the step's outcome stands.  It was taken for a refusal of the
    outcome (57P05 is no "unavailable" state), and the step that had
    succeeded ended in error."""
    import os
    import signal
    import conftest
    with conftest.running_cluster(idle_session_timeout="1000") as pg, \
            conftest.taskerd_factory(pg, request) as factory:
        t = factory(templates={"one.yaml": """\
name: one
namespace_name: conns
version: 1.0.0
step_templates:
  - name: a
    handler: noop
    handler_config: { sleep_ms: 300 }
"""}, workers=1)
        # A stalled host: the step ends and the connections time out
        # meanwhile; on waking, the outcome is read before the FATALs.
        # (These pauses met a FATAL on every run before the fix.)
        time.sleep(1.5)
        tid = t.create_task("one", {}, namespace=NS)["task_id"]
        time.sleep(0.2)
        os.kill(t.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)
        finally:
            os.kill(t.pid, signal.SIGCONT)
        task = t.wait_task(tid, timeout=20)
        assert task["status"] == "complete", task
        assert task["steps"][0]["attempts"] == 1, task
        assert "outcome refused" not in t.log(), t.log()[-3000:]


def test_a_cancel_is_heard_while_a_connection_waits_on_a_lock(taskerd, pg):
    """A request waits on a task's row that an operator's transaction
    holds.  Meanwhile another task is cancelled while its step waits in a
    busy worker's queue: the cancel is heard at once, and the step never
    starts.  The server delivers a notification only between a session's
    statements, and the listening connection was the one the waiting
    request took: the cancel was heard when the wait ended, after the
    queued step had run in the cancelled task."""
    t = taskerd(workers=1, templates=TEMPLATES,
                config={"database": {"pool": 2, "lock_timeout": "8s"}})
    held = t.create_task("quick", {"held": 1}, namespace=NS)["task_id"]
    t.wait_task(held)
    busy = t.create_task("slow", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: step(t, busy)["status"] == "in_progress",
                       10, message="the worker busy")
    queued = t.create_task("quick", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: step(t, queued)["status"] == "enqueued",
                       10, message="the step claimed, queued")

    holder = pg.psql_background(
        t.db, "BEGIN; SELECT id FROM tasks WHERE id = %d FOR UPDATE; "
              "SELECT pg_sleep(6); COMMIT;" % held)
    harness.wait_until(lambda: pg.scalar(t.db, (
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
        "'%%pg_sleep(6)%%' AND state = 'active' AND pid <> "
        "pg_backend_pid()")) == "1", 5, message="the row held")
    waiting = []
    waiter = threading.Thread(target=lambda: waiting.append(t.request(
        "DELETE", "/v1/tasks/%s" % held, json={}, timeout=20).status))
    waiter.start()
    harness.wait_until(lambda: pg.scalar(t.db, (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
        "'Lock' AND datname = current_database()")) == "1", 5,
        message="the request waiting on the row")

    r = t.request("DELETE", "/v1/tasks/%s" % queued, json={})
    assert r.status == 200, r.body
    assert t.wait_task(busy, timeout=20)["status"] == "complete"
    waiter.join()
    assert holder.wait(timeout=10) == 0
    s = step(t, queued)
    assert s["attempts"] == 0, s
    assert t.task(queued)["status"] == "cancelled"


def keepalive_timers(proxy, pid):
    """The keepalive timers, in seconds, of pid's TCP connections to the
    proxy, as ss shows them (None: no keepalive on one)."""
    out = subprocess.run(
        ["ss", "-Htnop", "state", "established", "dst",
         "127.0.0.1:%d" % proxy.port], capture_output=True, text=True,
        check=True).stdout
    timers = []
    for line in out.splitlines():
        if "pid=%d," % pid not in line:
            continue
        m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:([\d.]+)(ms|sec))?,",
                      line)
        timers.append(None if m is None else int(m.group(1) or 0) * 60 +
                      float(m.group(2) or 0) / (1000 if m.group(3) == "ms"
                                                else 1))
    return timers


@pytest.mark.parametrize("dsn_idle", [None, 7])
def test_idle_connections_are_probed_by_keepalives(taskerd, pg, dsn_idle):
    """An idle connection whose server or network went silently away is
    noticed in about a minute: each connection's TCP keepalive starts
    after 30 s of silence, not the system's two hours, which left the
    listening connection deaf to cancels meanwhile.  A keepalive setting
    of the DSN's own wins."""
    proxy = PgProxy(pg, tcp=True)
    try:
        db = pg.createdb()
        dsn = proxy.dsn(db)
        if dsn_idle is not None:
            dsn += " keepalives_idle=%d" % dsn_idle
        t = taskerd(templates=TEMPLATES, db=db, config={"database.dsn": dsn})
        timers = harness.wait_until(lambda: (lambda ts: ts if len(ts) >= 2
                                             else None)(
            keepalive_timers(proxy, t.pid)), 10,
            message="the node's connections listed")
        assert None not in timers, timers
        assert all(0 < s <= (dsn_idle or 30) for s in timers), timers
    finally:
        proxy.close()
