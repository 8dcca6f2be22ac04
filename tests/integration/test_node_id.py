"""A node id is one node's.  A second taskerd started with the id of a
node that runs (a copied node_id, two instances on one unix socket path)
would take that node's claims for its own at start and run its steps a
second time; it refuses to start instead, once it has seen the lease
renewed.  A node restarted after a crash does not wait for its old lease
when the process that held it is gone, and one stopped cleanly has handed
its lease back.  A pid says whether a process is gone only in the pid
namespace it belongs to: containers with the same hostname (a compose file
with a fixed `hostname:`) are told apart by their namespaces."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from pgproxy import PgProxy

QUICK = "name: quick\nstep_templates:\n  - name: only\n    handler: noop\n"
SLOW = """\
name: slow
step_templates:
  - name: only
    handler: noop
    handler_config: { sleep_ms: 3000 }
"""


def test_restart_after_a_crash_does_not_wait(taskerd):
    t = taskerd(templates={"quick.yaml": QUICK},
                config={"scheduler": {"lease": "1h"}})
    tid = t.create_task("quick", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    t.kill()
    t.start(ready_timeout=10)       # not an hour
    assert not t.log_lines("node id still leased")


def pid_namespace():
    """The launcher that runs taskerd as pid 1 of a pid namespace of its
    own, with its own /proc, as a container does (network and files stay
    shared).  (Without its own /proc the sanitizers' leak check cannot
    find its threads.)"""
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    try:
        r = subprocess.run(argv + ["true"], capture_output=True, text=True,
                           timeout=10)
    except FileNotFoundError:
        pytest.skip("unshare(1) is not installed")
    if r.returncode != 0:
        pytest.skip("no pid namespaces here: " + r.stderr.strip())
    return argv


def stop_in_namespace(t):
    """SIGTERM to the taskerd under its launcher (unshare keeps SIGTERM to
    itself); returns taskerd's exit code."""
    kids = harness.proc_children(t.pid)
    assert len(kids) == 1, kids
    os.kill(kids[0], signal.SIGTERM)
    t.proc.wait(20)
    return t.stop()


def lease_left_s(pg, t):
    return float(pg.scalar(t.db, "SELECT extract(epoch FROM lease_expires_at"
                           " - now()) FROM nodes WHERE id = '%s'"
                           % t.config["node_id"]))


@pytest.mark.parametrize("holder,second", [
    ("here", "here"), ("here", "in_a_container"),
    ("in_a_container", "in_a_container")])
def test_second_node_with_the_same_id_refuses_to_start(taskerd, holder,
                                                        second):
    """Also from a pid namespace of its own, where the first's pid is
    invisible or (both in containers) is its own pid 1: neither means the
    first is gone.  It waits for the lease, sees it renewed, and exits."""
    first = taskerd(templates={"slow.yaml": SLOW}, start=False,
                    config={"scheduler": {"lease": "2s"}})
    if holder == "in_a_container":
        first.launcher = pid_namespace()
    first.start()
    tid = first.create_task("slow", {})["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy"
                                   for w in first.workers()),
                       10, message="the step running")
    other = taskerd(templates={"slow.yaml": SLOW}, db=first.db, start=False,
                    config={"scheduler": {"lease": "2s"},
                            "node_id": first.config["node_id"]})
    if second == "in_a_container":
        other.launcher = pid_namespace()
    with pytest.raises(AssertionError, match="exited with 1"):
        other.start(ready_timeout=15)
    assert other.log_lines("node id still leased"), other.log_tail(10)
    assert other.log_lines("is in use by a live node"), other.log_tail(10)
    # The first node's step ran once, to its end.
    task = first.wait_task(tid, timeout=15)
    assert task["status"] == "complete" and \
        task["steps"][0]["attempts"] == 1, task
    if holder == "in_a_container":
        assert stop_in_namespace(first) == 0, first.log_tail(20)


def cut_off(taskerd, pg, proxy):
    """A node on a 2 s lease, through proxy, cut off from the database
    until its lease has run out."""
    db = pg.createdb()
    first = taskerd(templates={"quick.yaml": QUICK}, db=db,
                    config={"scheduler": {"lease": "2s"},
                            "database.dsn": proxy.dsn(db)})
    proxy.down_now()
    harness.wait_until(lambda: lease_left_s(pg, first) < 0, 10,
                       message="the first's lease run out")
    return first


def back_and_stopped(proxy, first):
    """Through again: the node stops, exit 1."""
    proxy.up()
    harness.wait_until(lambda: first.proc.poll() is not None, 20,
                       message="the first to stop")
    assert first.proc.returncode == 1, first.log_tail(20)


def test_a_node_back_after_its_lease_ran_out_leaves_its_successor(taskerd,
                                                                  pg):
    """A node cut off from the database until its lease ran out, and a
    successor started on its id meanwhile (the lease free, it need not
    wait).  When the first got through again it renewed the lease over
    the successor's, and both ran on one id: each took the other's claims
    for its own lost ones, and ran their steps a second time.  A renewal
    leaves another process's live lease alone: the first stops, saying
    why, and the successor runs on."""
    proxy = PgProxy(pg)
    try:
        first = cut_off(taskerd, pg, proxy)
        db = first.db
        second = taskerd(templates={"quick.yaml": QUICK}, db=db,
                         config={"scheduler": {"lease": "2s"},
                                 "node_id": first.config["node_id"]})
        assert not second.log_lines("node id still leased")
        back_and_stopped(proxy, first)
        assert first.log_lines(
            "node id %s is in use by another process \\(host [^,]+, pid "
            "%d\\), whose lease is live" % (first.config["node_id"],
                                          second.pid)), first.log_tail(20)
        tid = second.create_task("quick", {})["task_id"]
        assert second.wait_task(tid)["status"] == "complete"
        assert pg.scalar(db, "SELECT pid FROM nodes WHERE id = '%s'" %
                         first.config["node_id"]) == str(second.pid)
    finally:
        proxy.close()


def test_a_node_back_to_an_older_successor_on_its_id_stops(taskerd, pg):
    """As above, the successor a taskerd older than migration 011, whose
    renewal sets the row's host and pid and leaves its instance as it was
    (the first node's): the pid tells them apart."""
    proxy = PgProxy(pg)
    try:
        first = cut_off(taskerd, pg, proxy)
        pg.execute(first.db, "UPDATE nodes SET host = 'otherhost',"
                   " pid = 4242, heartbeat_at = now(),"
                   " lease_expires_at = now() + interval '1 hour'"
                   " WHERE id = '%s'" % first.config["node_id"])
        back_and_stopped(proxy, first)
        assert first.log_lines(r"in use by another process \(host "
                               r"otherhost, pid 4242\)"), first.log_tail(20)
    finally:
        proxy.close()


def test_clean_stop_hands_the_lease_back(taskerd, pg):
    """A restarted container is a new pid namespace, which cannot tell
    whether the old one's taskerd is gone: a clean stop ends its lease, so
    the restart does not wait for it, and the others see the node gone."""
    ns = pid_namespace()
    t = taskerd(templates={"quick.yaml": QUICK}, start=False,
                config={"scheduler": {"lease": "1h"}})
    t.launcher = ns
    t.start()
    tid = t.create_task("quick", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert lease_left_s(pg, t) > 3000
    assert stop_in_namespace(t) == 0, t.log_tail(20)
    assert lease_left_s(pg, t) <= 0
    # Another node sees it stopped, not lost (as a crashed node is).
    other = taskerd(templates={"quick.yaml": QUICK}, db=t.db)
    states = {n["node_id"]: n["state"]
              for n in other.get("/v1/nodes").body["nodes"]}
    assert states == {t.config["node_id"]: "stopped",
                      other.config["node_id"]: "alive"}, states
    r = subprocess.run([str(harness.REPO / "tasker-ctl"), "--url",
                        other.url, "--no-color", "nodes"],
                       env=harness.clean_env(), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and " stopped " in r.stdout, r.stdout
    t.start(ready_timeout=10)       # not an hour
    assert not t.log_lines("node id still leased")
    node = [n for n in t.get("/v1/nodes").body["nodes"]
            if n["node_id"] == t.config["node_id"]][0]
    assert node["state"] == "alive" and node["this_node"], node
    assert stop_in_namespace(t) == 0, t.log_tail(20)


def test_ready_only_while_the_lease_is_held(taskerd, pg):
    """A node claims nothing without its lease: until its first renewal
    (it was ready, yet missing from /v1/nodes) and while its renewals
    cannot get through though the database answers, /health/ready says
    503, so a load balancer sends the work elsewhere."""
    t = taskerd(templates={"quick.yaml": QUICK},
                config={"scheduler": {"lease": "2s"}})
    node_id = t.config["node_id"]
    r = t.get("/health/ready")
    assert r.status == 200 and r.body["lease"] == "held", r
    assert node_id in {n["node_id"] for n in t.get("/v1/nodes").body["nodes"]}
    # An operator's transaction holds the node's row: no renewal gets
    # through until it ends.
    holder = pg.psql_background(
        t.db, "SET application_name = 'row-holder'; BEGIN; SELECT 1 FROM "
        "nodes WHERE id = '%s' FOR UPDATE; SELECT pg_sleep(60); COMMIT;"
        % node_id)
    try:
        harness.wait_until(lambda: t.get("/health/ready").status == 503, 10,
                           message="/health/ready to answer 503")
        r = t.get("/health/ready")
        assert r.status == 503 and r.body == {
            "status": "not_ready", "database": "ok", "lease": "not_held",
            "workers_up": 2, "workers": 2}, r
        assert t.log_lines("node lease lapsed"), t.log_tail(20)
        r = subprocess.run([str(harness.REPO / "tasker-ctl"), "--url", t.url,
                            "--no-color", "health"], env=harness.clean_env(),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "lease not_held" in r.stdout, r.stdout
    finally:
        # Held until here, however slow the checks above.
        pg.execute(t.db, "SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE application_name = 'row-holder'")
        holder.wait(20)
    harness.wait_until(lambda: t.get("/health/ready").status == 200, 10,
                       message="/health/ready back to 200")
    tid = t.create_task("quick", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"


def test_a_lease_lapsed_during_the_start_still_ends_it_ready(taskerd, pg,
                                                            tmp_path):
    """The first renewal got through while the workers were starting,
    then the lease lapsed (an operator's transaction held the node's row)
    and the workers came up.  Readiness was looked at again only after
    the first renewal: once the lease was back the node served, but the
    start never ended - no "taskerd ready", no READY=1, and systemd would
    have killed the unit at its start timeout."""
    wrapper = tmp_path / "slow-worker"
    wrapper.write_text("#!/bin/sh\nsleep 4\nexec '%s' \"$@\"\n"
                       % harness.worker_bin())
    wrapper.chmod(0o755)
    t = taskerd(templates={"quick.yaml": QUICK}, start=False,
                config={"scheduler": {"lease": "1500ms"},
                        "workers": {"path": str(wrapper)}})
    node_id = t.config["node_id"]
    starting = threading.Thread(target=t.start,
                                kwargs={"ready_timeout": 40})
    starting.start()
    holder = None
    try:
        def leased():
            try:
                return pg.scalar(t.db, (
                    "SELECT count(*) FROM nodes WHERE id = '%s' AND "
                    "lease_expires_at > now()") % node_id) == "1"
            except harness.HarnessError:
                return False        # (not migrated yet)
        harness.wait_until(leased, 10, message="the first renewal")
        holder = pg.psql_background(
            t.db, "SET application_name = 'row-holder'; BEGIN; SELECT 1 "
            "FROM nodes WHERE id = '%s' FOR UPDATE; SELECT pg_sleep(60); "
            "COMMIT;" % node_id)
        harness.wait_until(lambda: t.log_lines("node lease lapsed"), 10,
                           message="the lease to lapse")
        harness.wait_until(
            lambda: len(t.log_lines('msg="worker ready"')) >= 2, 20,
            message="the workers up")
        assert not t.log_lines('msg="taskerd ready"'), t.log_tail(20)
    finally:
        pg.execute(t.db, "SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE application_name = 'row-holder'")
        if holder is not None:
            holder.wait(20)
        starting.join(60)
    assert t.get("/health/ready").status == 200
    harness.wait_until(lambda: t.log_lines('msg="taskerd ready"'), 10,
                       message="the start to end ready")


def test_stop_that_leaves_a_step_running_keeps_the_lease(taskerd, pg):
    """A step still running when the drain time is up keeps its claim, and
    the lease keeps fencing it until it runs out."""
    long_step = SLOW.replace("slow", "long").replace("3000", "60000")
    t = taskerd(templates={"long.yaml": long_step},
                config={"scheduler": {"lease": "1h"}})
    t.create_task("long", {})
    harness.wait_until(lambda: any(w["state"] == "busy"
                                   for w in t.workers()),
                       10, message="the step running")
    t.stop(timeout=30)
    assert t.log_lines("drain deadline passed"), t.log_tail(20)
    assert lease_left_s(pg, t) > 3000


def here():
    """What a process in this pid namespace writes as its instance, but
    its pid: " BOOT_ID pid:[INODE]"."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    return " %s %s" % (boot, os.readlink("/proc/self/ns/pid"))


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def leased_to(pg, t, pid, instance, seconds):
    """The id's row as a holder left it: its pid and instance."""
    pg.execute(t.db, "INSERT INTO nodes (id, host, pid, version, "
               "lease_expires_at, instance) VALUES ('%s', '%s', %d, 'x', "
               "now() + interval '%d seconds', '%s')"
               % (t.config["node_id"], socket.gethostname(), pid, seconds,
                  instance))


def start_raw(t, launcher=()):
    """taskerd started without waiting for it to be ready."""
    log = open(t.logfile, "ab")
    p = subprocess.Popen(list(launcher) + [harness.taskerd_bin(), "-c",
                                           t.config_path],
                         cwd=str(harness.REPO), env=harness.clean_env(),
                         stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT)
    log.close()
    return p


@pytest.mark.parametrize("pid_in_instance", ["its_own", "another"])
def test_a_holder_counts_as_gone_only_by_its_own_instance(taskerd, pg,
                                                         pid_in_instance):
    """A dead pid in this pid namespace frees the lease at once; but only
    when the row's instance was written by that pid.  A taskerd older than
    the instance column renews the pid and leaves the instance as an
    earlier run wrote it, maybe in another namespace: that says nothing,
    and the lease is waited for."""
    t = taskerd(templates={"quick.yaml": QUICK})   # (for the schema)
    t.stop()
    pg.execute(t.db, "DELETE FROM nodes")
    dead = dead_pid()
    writer = dead if pid_in_instance == "its_own" else dead_pid()
    leased_to(pg, t, dead, "%d%s" % (writer, here()), 4)
    t.start(ready_timeout=20)
    waited = t.log_lines("node id still leased")
    if pid_in_instance == "its_own":
        assert not waited, waited
    else:
        assert waited, t.log_tail(20)


@pytest.mark.parametrize("where", ["here", "in_a_container"])
def test_a_stop_while_waiting_for_the_lease_is_heard(taskerd, pg, where):
    """SIGTERM while the start waits for a lease ends it at once, also as
    a container's pid 1, which has no default action for it (docker stop
    would wait out the lease, then kill a node that had begun to claim)."""
    launcher = pid_namespace() if where == "in_a_container" else []
    t = taskerd(templates={"quick.yaml": QUICK})
    t.stop()
    pg.execute(t.db, "DELETE FROM nodes")
    leased_to(pg, t, 1, "1 another-boot pid:[1]", 120)
    p = start_raw(t, launcher)
    try:
        harness.wait_until(lambda: t.log_lines("node id still leased"), 20,
                           message="the wait for the lease")
        target = p.pid
        if launcher:
            kids = harness.proc_children(p.pid)
            assert len(kids) == 1, kids
            target = kids[0]
        os.kill(target, signal.SIGTERM)
        rc = p.wait(5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == (143 if launcher else -signal.SIGTERM), rc


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


def test_a_second_start_sweeps_nothing_before_it_holds_the_lease(taskerd,
                                                                   pg):
    """Two processes started with one id at once both find it free.  The
    one whose first renewal loses exits; but the start-up sweep went out
    before that renewal, and took the claims the winner had made meanwhile
    for its own earlier run's: it failed an attempt the winner's worker
    was running, and the step ran a second time.  The sweep now waits for
    the node's first renewal.  Here the race is held open: the id's lease
    looks run out when the second looks, and an operator's transaction
    holds the row, so that its renewal waits, until the lease is back."""
    long_step = SLOW.replace("slow", "long").replace("3000", "10000")
    first = taskerd(templates={"long.yaml": long_step},
                    config={"scheduler": {"lease": "30s"}})
    node_id = first.config["node_id"]
    tid = first.create_task("long", {})["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy"
                                   for w in first.workers()),
                       10, message="the step running")
    gate = pg.psql_background(first.db, "SET application_name = 'gate'; "
                              "SELECT pg_advisory_lock(7101); "
                              "SELECT pg_sleep(120);")
    holder = None
    second = None
    try:
        harness.wait_until(lambda: pg.scalar(first.db, (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND objid = 7101 AND granted")) == "1", 10,
            message="the gate closed")
        # (COMMIT ends the implicit transaction of the first statement.)
        holder = pg.psql_background(first.db, (
            "SET application_name = 'row-holder'; UPDATE nodes SET "
            "lease_expires_at = now() WHERE id = '%s'; COMMIT; BEGIN; "
            "SELECT 1 FROM nodes WHERE id = '%s' FOR UPDATE; "
            "SELECT pg_advisory_xact_lock(7101); UPDATE nodes SET "
            "lease_expires_at = now() + interval '30 seconds' "
            "WHERE id = '%s'; COMMIT;") % (node_id, node_id, node_id))
        harness.wait_until(lambda: pg.scalar(first.db, (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name"
            " = 'row-holder' AND wait_event = 'advisory'")) == "1", 10,
            message="the row held")
        other = taskerd(templates={"long.yaml": long_step}, db=first.db,
                        start=False, config={"scheduler": {"lease": "30s"},
                                             "node_id": node_id})
        second = start_raw(other)
        harness.wait_until(lambda: other.log_lines("taskerd started"), 20,
                           message="the second started")
        # Time for a sweep to go out, were it sent before the renewal.
        time.sleep(3)
        assert not other.log_lines("node id still leased"), \
            other.log_tail(20)
    finally:
        pg.execute(first.db, "SELECT pg_terminate_backend(pid) FROM "
                   "pg_stat_activity WHERE application_name = 'gate'")
        gate.wait(20)
        if holder is not None:
            holder.wait(20)
    try:
        rc = second.wait(20)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert rc == 1, other.log_tail(20)
    assert other.log_lines("is in use by another process"), \
        other.log_tail(20)
    assert not other.log_lines("before it restarted"), other.log_tail(20)
    task = first.wait_task(tid, timeout=30)
    assert task["status"] == "complete" and \
        task["steps"][0]["attempts"] == 1, task
