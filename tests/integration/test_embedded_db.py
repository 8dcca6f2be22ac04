"""With no database configured, taskerd creates and supervises its own
PostgreSQL under state_dir: it runs tasks, keeps them across restarts, and
brings the server back if it dies."""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

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


@pytest.fixture
def state():
    """A state directory of its own.  The server runs as an unprivileged
    user when we are root: the directory must be one it can reach (as
    /var/lib/taskerd is)."""
    d = tempfile.mkdtemp(prefix="taskerd-state-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def start_in_background(t):
    """t.start() in a thread: (the thread, the list of its failures)."""
    failed = []

    def start():
        try:
            t.start(ready_timeout=60)
        except AssertionError as e:
            failed.append(e)
    starter = threading.Thread(target=start)
    starter.start()
    return starter, failed


def embedded(taskerd, state, start=True, config=None):
    """A taskerd on the embedded database in state, with HELLO."""
    return taskerd(templates={"hello.yaml": HELLO}, start=start,
                   ready_timeout=60,
                   config=dict({"database": harness.DELETE,
                                "state_dir": state}, **(config or {})))


def test_embedded_database(taskerd, state):
    t = embedded(taskerd, state)
    assert os.path.exists(os.path.join(state, "pg", "data",
                                       "PG_VERSION"))
    assert t.log_lines(r'msg="embedded database: creating a cluster"')
    first = t.create_task("hello", {})["task_id"]
    assert t.wait_task(first)["status"] == "complete"
    # A reload finds nothing changed that needs a restart (the embedded
    # server's dsn is no setting of the operator's).
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines('msg="templates unchanged"'), 10,
                       message="the reload done")
    assert not t.log_lines("a restart applies"), t.log_tail(10)

    # The server dies: taskerd starts it again and carries on.
    pm = postmaster_pid(state)
    assert harness.proc_ppid(pm) == t.pid
    os.kill(pm, signal.SIGKILL)
    (died,) = harness.wait_until(lambda: t.log_lines(
        r'msg="embedded database died"'), 10, message="death noticed")
    assert len(t.log_lines(r"restart_in_ms=250\b")) == 1
    # What killed it, and where the server says why.
    died = harness.logfmt(died)
    assert died["signal"] == "9", died
    assert died["log"] == os.path.join(state, "pg", "postgresql.log"), died
    # Dying again at once waits longer before the next start.
    pm = crash_and_restart(t, state, pm, accept=False)
    assert len(t.log_lines(r"restart_in_ms=500\b")) == 1
    second = harness.wait_until(
        lambda: (lambda r: r.body["task_id"] if r.status == 201
                 else None)(t.post("/v1/tasks", json={
                     "name": "hello", "context": {}})),
        30, interval=0.3, message="a task accepted after the restart")
    assert t.wait_task(second)["status"] == "complete"

    # A server that then ran a while (10 s) is restarted at the first
    # delay again.
    time.sleep(10.5)        # the server's uptime, the point here
    crash_and_restart(t, state, pm)
    assert len(t.log_lines(r"restart_in_ms=250\b")) == 2, \
        t.log_lines("embedded database died")

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


def crash_and_restart(t, state, old, accept=True):
    """SIGKILL the server taskerd started after `old` as soon as it is
    there, and (with accept) wait for the next one to accept a task;
    returns the killed server's pid."""
    def new_server():
        try:
            p = postmaster_pid(state)
        except (FileNotFoundError, ValueError):
            return None
        return p if p != old and harness.proc_alive(p) else None

    pm = harness.wait_until(new_server, 30, message="a new server")
    deaths = len(t.log_lines(r'msg="embedded database died"'))
    os.kill(pm, signal.SIGKILL)
    harness.wait_until(lambda: len(t.log_lines(
        r'msg="embedded database died"')) > deaths, 10,
        message="death noticed")
    if accept:
        harness.wait_until(lambda: t.post("/v1/tasks", json={
            "name": "hello", "context": {}}).status == 201, 30,
            interval=0.3, message="a task accepted after the restart")
    return pm


def server_gone(state_dir):
    """No server holds the data directory any more."""
    try:
        pid = postmaster_pid(state_dir)
    except FileNotFoundError:
        return True
    return not harness.proc_alive(pid)


def test_embedded_server_ends_with_taskerd(taskerd, state):
    """Whatever ends taskerd ends its server: a start that fails after the
    server is up (here the HTTP port is taken), and a kill -9.  The next
    start then runs on the same data instead of finding a stray server
    holding it."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        t = embedded(taskerd, state, start=False, config={
            "http.listen": "127.0.0.1:%d" % taken.getsockname()[1]})
        with pytest.raises(AssertionError, match="exited with 1"):
            t.start(ready_timeout=60)
        assert t.log_lines("embedded database ready"), t.log_tail(20)
        # Stopped and reaped before taskerd exited (it was left to stop
        # by itself, after taskerd was gone).
        assert t.log_lines("embedded database stopped"), t.log_tail(20)
        assert server_gone(state)

        # Started again (the port free now): it runs, on the same data.
        taken.close()
        t._stopped = False
        t.start(ready_timeout=60)
        tid = t.create_task("hello", {})["task_id"]
        assert t.wait_task(tid)["status"] == "complete"
        pm = postmaster_pid(state)
        t.kill()
        harness.wait_until(lambda: not harness.proc_alive(pm), 15,
                           message="the server to stop after kill -9")
        t.start(ready_timeout=60)
        assert t.task(tid)["status"] == "complete"
        assert t.stop() == 0
    finally:
        taken.close()


def stale_locks(state, pid, pidfile_rest):
    """The lock files a server that was killed leaves, naming pid, owned
    by the server's user: postmaster.pid (pid, then pidfile_rest's lines)
    and its socket's lock file.  PostgreSQL refuses to start while either
    names a process it can signal."""
    data = os.path.join(state, "pg", "data")
    st = os.stat(data)
    for path, rest in ((os.path.join(data, "postmaster.pid"), pidfile_rest),
                       (os.path.join(state, "pg", ".s.PGSQL.5432.lock"),
                        [os.path.join(state, "pg")])):
        with open(path, "w") as f:
            f.write("\n".join([str(pid)] + rest) + "\n")
        os.chown(path, st.st_uid, st.st_gid)


@contextlib.contextmanager
def dead_server_left(t, state, linger_s):
    """t stopped, and lock files left naming a zombie of the server's user
    (a dead server never reaped, as under a container's pid 1 that does not
    reap; of that user, for PostgreSQL takes another user's process, which
    it cannot signal, for gone), and a process still in the data directory
    for linger_s seconds.  Yields (zombie, lingering process)."""
    data = os.path.join(state, "pg", "data")
    with open(os.path.join(data, "postmaster.pid")) as f:
        pidfile = f.read().split("\n")[1:]
    assert t.stop() == 0
    st = os.stat(data)
    zombie = subprocess.Popen(["true"], user=st.st_uid, group=st.st_gid)
    lingering = subprocess.Popen(["sleep", str(linger_s)], cwd=data)
    try:
        harness.wait_until(lambda: harness.proc_state(zombie.pid) == "Z", 10,
                           message="a zombie")
        stale_locks(state, zombie.pid, pidfile)
        t._stopped = False
        yield zombie, lingering
    finally:
        lingering.kill()
        lingering.wait()
        zombie.wait()


def test_a_dead_server_never_reaped_does_not_hold_the_data(taskerd, state):
    """postmaster.pid names a zombie: PostgreSQL took it for a server
    still running and refused every start.  The file is removed - once no
    process runs in the data directory any more (one that does, ending,
    is waited for)."""
    t = embedded(taskerd, state)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    with dead_server_left(t, state, 1.5) as (zombie, lingering):
        t.start(ready_timeout=60)
        assert lingering.poll() is not None, \
            "started while a process ran in the data directory"
        assert t.log_lines(r"removing the lock files of a dead server"
                           r".* pid=%d" % zombie.pid), t.log_tail(20)
        assert t.task(tid)["status"] == "complete"
        assert t.stop() == 0


def test_a_dead_servers_process_still_running_there_stops_the_start(
        taskerd, state):
    """As above, but a process still runs in the data directory after the
    10 s taskerd waits for it: the start fails, naming it, rather than
    start a server beside it."""
    t = embedded(taskerd, state)
    with dead_server_left(t, state, 60) as (zombie, lingering):
        with pytest.raises(AssertionError, match="exited with 1"):
            t.start(ready_timeout=60)
        assert t.log_lines(r"is dead, but its process %d still runs "
                           r"there" % lingering.pid), t.log_tail(10)
        assert lingering.poll() is None         # left alone


def test_server_left_on_the_data_directory_is_stopped(taskerd, state, pg):
    """A server some earlier run left on the data directory (started by
    hand here, with pg_ctl) is stopped before taskerd starts its own,
    instead of failing the start on its lock file."""
    data = os.path.join(state, "pg", "data")
    t = embedded(taskerd, state)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.stop() == 0
    cmd = pg._server_cmd([os.path.join(pg.bindir, "pg_ctl"), "-D", data,
                          "-l", os.path.join(state, "pg", "stray.log"),
                          "-o", "-k %s -c listen_addresses=" %
                          os.path.join(state, "pg"), "-w", "start"])
    assert subprocess.run(cmd, stdin=subprocess.DEVNULL,
                          capture_output=True).returncode == 0
    stray = postmaster_pid(state)
    t._stopped = False
    t.start(ready_timeout=60)
    assert t.log_lines("stopping a server left running"), t.log_tail(20)
    assert not harness.proc_alive(stray)
    assert postmaster_pid(state) != stray
    assert t.task(tid)["status"] == "complete"
    assert t.stop() == 0


def test_cluster_is_made_whatever_the_callers_locale(taskerd, state,
                                                    monkeypatch):
    """A LANG that names a locale this machine has not generated (as an
    ssh client sends it) does not fail the cluster's creation: initdb is
    given its locale (it took the caller's, and refused)."""
    base = harness.clean_env

    def foreign(more=None):
        env = base(more)
        del env["LC_ALL"]
        env.update(LANG="xx_XX.UTF-8", LC_CTYPE="UTF-8")
        return env
    monkeypatch.setattr(harness, "clean_env", foreign)
    t = embedded(taskerd, state)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    r = subprocess.run(["psql", "-h", os.path.join(state, "pg"), "-U",
                        "postgres", "-d", "postgres", "-Atc",
                        "SELECT datcollate FROM pg_database "
                        "WHERE datname = 'postgres'"],
                       capture_output=True, text=True, timeout=30,
                       env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"})
    assert r.stdout.strip() == "C.UTF-8", (r.stdout, r.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the server "
                    "runs as another user only when taskerd is root")
def test_state_directory_made_under_umask_077(taskerd, state):
    """A state directory taskerd makes itself is one the server's user can
    enter, whatever the umask (with 077, initdb could not reach it)."""
    sub = os.path.join(state, "sub")
    old = os.umask(0o077)
    try:
        t = embedded(taskerd, sub)
    finally:
        os.umask(old)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert os.stat(sub).st_mode & 0o777 == 0o755


def test_cluster_of_a_version_not_installed_is_named(taskerd, state):
    """A cluster made by a PostgreSQL whose server is not installed (a
    Debian upgrade installed the next one beside it) is not started with
    another version's server: the error says which one it needs."""
    data = os.path.join(state, "pg", "data")
    os.makedirs(data)
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("99\n")
    t = embedded(taskerd, state, start=False)
    with pytest.raises(AssertionError):
        t.start(ready_timeout=20)
    assert t.log_lines("the cluster in %s is PostgreSQL 99, whose server "
                       "is not installed" % data), t.log_tail(20)
    assert "install postgresql-99" in t.log()
    assert os.listdir(data) == ["PG_VERSION"]

    # One that does not say a version is not taken for any.
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("../../bin\n")
    t._stopped = False
    with pytest.raises(AssertionError):
        t.start(ready_timeout=20)
    assert t.log_lines("PG_VERSION does not say a PostgreSQL version"), \
        t.log_tail(20)
    assert os.listdir(data) == ["PG_VERSION"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the cluster's "
                    "owner is chosen when taskerd runs as root")
def test_a_root_start_keeps_the_clusters_owner(taskerd, state):
    """taskerd run as root on a cluster a service user owns (sudo taskerd
    on /var/lib/taskerd) runs its server as that user and changes no
    owner: it gave the directory to postgres, and the service could not
    reach its own database any more.  Its lock file is left to the
    state directory's owner: a root run left it root's, and the service's
    next start could not open it."""
    t = embedded(taskerd, state)
    assert t.stop() == 0
    nobody = pwd.getpwnam("nobody")
    pgdir = os.path.join(state, "pg")
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    for top, dirs, files in os.walk(pgdir):
        for name in [top] + [os.path.join(top, x) for x in dirs + files]:
            os.lchown(name, nobody.pw_uid, nobody.pw_gid)
    t._stopped = False
    t.start(ready_timeout=60)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert os.stat(pgdir).st_uid == nobody.pw_uid
    with open("/proc/%d/status" % postmaster_pid(state)) as f:
        uid = [line.split()[1] for line in f if line.startswith("Uid:")]
    assert uid == [str(nobody.pw_uid)], uid
    lock = os.stat(os.path.join(state, "taskerd.lock"))
    assert (lock.st_uid, lock.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert t.stop() == 0


def test_a_state_dir_with_a_space(taskerd, state):
    """A state_dir with a space (and a quote) in its path: the server's
    socket directory goes into a connection string quoted.  It used to
    make one libpq could not read, and the start waited 60 s for a
    server that was up."""
    odd = os.path.join(state, "my state's dir")
    os.mkdir(odd)
    os.chmod(odd, 0o755)
    t = embedded(taskerd, odd)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.stop() == 0


def test_a_state_dir_too_long_for_the_socket_is_named(taskerd, state):
    """The server's socket file lives in state_dir, and a socket's path
    has a limit (108 bytes): a longer one is refused at once, saying so,
    rather than by the server, as "could not create any Unix-domain
    sockets"."""
    deep = os.path.join(state, "d" * (91 - len(state) - 1))
    assert len(deep) == 91
    t = embedded(taskerd, deep, start=False)
    with pytest.raises(AssertionError):
        t.start(ready_timeout=20)
    assert t.returncode == 1
    assert t.log_lines("is too long for the server's socket in it "
                       r"\(91 bytes; at most 90\)"), t.log_tail(10)
    assert not t.log_lines("creating a cluster"), t.log_tail(10)
    # At the limit, it runs.
    t = embedded(taskerd, deep[:-1])
    assert t.wait_task(t.create_task("hello", {})["task_id"])["status"] == \
        "complete"
    assert t.stop() == 0


@pytest.mark.parametrize("files", ["both", "socket lock only"])
def test_a_stale_pid_file_naming_another_process_is_removed(taskerd, state,
                                                           files):
    """After a crash the pid in postmaster.pid (and in the socket's lock
    file) may be some other process of the server's user: PostgreSQL
    refuses to start while it lives.  That process does not run in the
    data directory, as a server does: the files are stale, and removed
    (the socket's was left, and still refused the start)."""
    t = embedded(taskerd, state)
    assert t.stop() == 0
    data = os.path.join(state, "pg", "data")
    owner = os.stat(data).st_uid

    def become_owner():
        if os.geteuid() == 0 and owner != 0:
            os.setgid(os.stat(data).st_gid)
            os.setuid(owner)
    other = subprocess.Popen(["sleep", "60"], preexec_fn=become_owner,
                             cwd="/")
    try:
        stale_locks(state, other.pid, [data])
        if files == "socket lock only":
            os.unlink(os.path.join(data, "postmaster.pid"))
        t._stopped = False
        t.start(ready_timeout=60)
        assert t.log_lines("removing the stale lock files of a server"), \
            t.log_tail(20)
        tid = t.create_task("hello", {})["task_id"]
        assert t.wait_task(tid)["status"] == "complete"
        assert other.poll() is None     # left alone
        assert t.stop() == 0
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the server runs "
                    "as another user only when taskerd runs as root")
def test_a_state_dir_the_servers_user_cannot_enter(taskerd, state):
    """As root on a state_dir only root may enter (a systemd unit run as
    root, StateDirectoryMode=0750), the server's user cannot reach its
    cluster: the start says so at once, naming the user and the
    directory.  initdb used to fail, pointing at a log it could not
    write."""
    os.chmod(state, 0o750)
    t = embedded(taskerd, state, start=False)
    with pytest.raises(AssertionError):
        t.start(ready_timeout=60)
    assert t.returncode == 1
    assert t.log_lines(r"the server's user \S+ cannot reach %s/pg: every "
                       "directory above it must let that user through"
                       % state), t.log_tail(20)
    assert not t.log_lines("creating a cluster"), t.log_tail(20)


def test_start_stopped_during_initdb_starts_next_time(taskerd, state):
    """taskerd killed while initdb creates its cluster (a restart during
    the first start, a power cut): the next start makes the cluster anew
    and runs.  The half-made one used to sit in the data directory, and
    every start failed on it."""
    t = embedded(taskerd, state, start=False)
    starter, failed = start_in_background(t)

    def initdb_writing():
        kids = [k for k in harness.proc_children(t.pid or 0)
                if os.path.basename((harness.proc_cmdline(k) or
                                     [""])[0]) == "initdb"]
        made = [d for d in ("data", "data.new") if os.path.exists(
            os.path.join(state, "pg", d, "PG_VERSION"))]
        return kids if kids and made else None
    initdb = harness.wait_until(initdb_writing, 30, interval=0.005,
                                message="initdb under way")
    for pid in initdb:
        os.kill(pid, signal.SIGKILL)
    t.kill()
    starter.join(60)
    assert failed, "taskerd became ready without its initdb"
    t._stopped = False
    t.start(ready_timeout=60)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert not os.path.exists(os.path.join(state, "pg", "data.new"))
    assert t.stop() == 0


def test_a_second_taskerd_on_the_state_directory_is_refused(taskerd, state):
    """Two first starts at once on one state_dir: one runs, the other
    exits at once naming the state_dir (both used to run initdb into the
    same cluster).  A start while the first runs names its pid; once it
    has stopped, the state_dir is free again."""
    first, second = (embedded(taskerd, state, start=False) for _ in "12")
    starts = [start_in_background(t) for t in (first, second)]
    for starter, _ in starts:
        starter.join(90)
    failed = [t for t, (_, f) in zip((first, second), starts) if f]
    assert len(failed) == 1, "two taskerd ran on one state_dir"
    loser = failed[0]
    winner = second if loser is first else first
    assert loser.returncode == 1, loser.log_tail(10)
    line = r"in use by another taskerd( \(pid %d\))?" % winner.pid
    assert len(loser.log_lines(line)) == 1, loser.log_tail(10)
    assert not loser.log_lines("creating a cluster"), loser.log_tail(10)
    tid = winner.create_task("hello", {})["task_id"]
    assert winner.wait_task(tid)["status"] == "complete"

    third = embedded(taskerd, state, start=False)
    with pytest.raises(AssertionError):
        third.start(ready_timeout=30)
    assert third.returncode == 1
    assert third.log_lines(r"state_dir %s is in use by another taskerd "
                           r"\(pid %d\)" % (state, winner.pid)), \
        third.log_tail(10)
    assert winner.task(tid)["status"] == "complete"

    assert winner.stop() == 0
    loser.start(ready_timeout=60)
    assert loser.task(tid)["status"] == "complete"
    assert loser.stop() == 0


def test_server_that_does_not_stop_is_ended_within_the_stop_budget(taskerd, state):
    """A server that ignores its shutdown (stopped here with SIGSTOP; a
    long checkpoint on a slow disk is the real case) gets a fast, then an
    immediate shutdown, then SIGKILL, so that taskerd exits within the
    unit's TimeoutStopSec=30s instead of being killed with its steps'
    leases held.  The next start recovers and runs on the same data."""
    t = embedded(taskerd, state)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    pm = postmaster_pid(state)
    os.kill(pm, signal.SIGSTOP)
    started = time.monotonic()
    assert t.stop(timeout=40) == 0
    took = time.monotonic() - started
    assert 14 < took < 20, "stopped in %.1f s" % took
    assert t.log_lines(r"no exit 12000 ms after a fast shutdown")
    assert t.log_lines(r"no exit 3000 ms after an immediate shutdown")
    assert not harness.proc_alive(pm)

    t._stopped = False
    t.start(ready_timeout=60)
    assert t.task(tid)["status"] == "complete"
    assert t.stop() == 0


def test_start_waits_for_a_recovering_server(taskerd, state, pg):
    """A server that says it is starting up (recovering: here a standby
    that waits to be promoted) is waited for, however long it takes, and
    said so every 10 s; a limit used to fail such a start after 60 s, and
    every restart began the recovery again."""
    data = os.path.join(state, "pg", "data")
    t = embedded(taskerd, state)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.stop() == 0
    owner = os.stat(data)
    for name, text in (("standby.signal", ""),
                       ("postgresql.auto.conf", "hot_standby = off\n")):
        with open(os.path.join(data, name), "a") as f:
            f.write(text)
        os.chown(os.path.join(data, name), owner.st_uid, owner.st_gid)

    t._stopped = False
    starter, failed = start_in_background(t)
    harness.wait_until(lambda: t.log_lines(
        r'msg="embedded database is recovering, waiting" waited_s=10\b'),
        20, message="the start waiting for the recovery")
    r = subprocess.run(pg._server_cmd([os.path.join(pg.bindir, "pg_ctl"),
                                       "-D", data, "promote"]),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r
    starter.join(60)
    assert not failed, failed
    assert t.task(tid)["status"] == "complete"
    assert t.stop() == 0


def test_the_server_gets_the_descriptor_limit_taskerd_was_given(taskerd,
                                                               state):
    """taskerd raises its own soft limit to the hard one (its API clients
    each hold a descriptor); the embedded server is started with the
    limit taskerd was given, as its other children are."""
    t = embedded(taskerd, state, start=False)
    t.launcher = ["prlimit", "--nofile=256:4096", "--"]
    t.start(ready_timeout=60)
    assert harness.proc_soft_nofile(t.pid) == 4096
    assert harness.proc_soft_nofile(postmaster_pid(state)) == 256
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"


def test_a_server_that_dies_during_the_start_is_started_again(taskerd, state):
    """The embedded server dies while the start waits (here for the lease
    of its node id, held elsewhere): it is reaped once the loop runs and
    started again, and the start ends ready.  Its death went unseen (no
    SIGCHLD handler yet): a zombie, and a start never ready."""
    t = embedded(taskerd, state, config={"node_id": "n1",
                                         "scheduler.lease": "3s"})
    # Stopped, so that no renewal undoes it: the lease is another host's.
    os.kill(t.pid, signal.SIGSTOP)
    try:
        r = subprocess.run(
            ["psql", "-h", os.path.join(state, "pg"), "-U", "postgres",
             "-d", "postgres", "-Atc", "UPDATE nodes SET host = "
             "'elsewhere', lease_expires_at = now() + interval '4 s' "
             "WHERE id = 'n1' RETURNING id"], capture_output=True,
            text=True, timeout=30, env={"PATH": os.environ["PATH"]})
        assert r.stdout.split() == ["n1", "UPDATE", "1"], (r.stdout, r.stderr)
        pm = postmaster_pid(state)
    finally:
        t.kill()
    harness.wait_until(lambda: not harness.proc_alive(pm), 15,
                       message="the server to stop with taskerd")
    starter, failed = start_in_background(t)
    try:
        harness.wait_until(lambda: t.log_lines("node id still leased"), 30,
                           message="the start waiting for the lease")
        os.kill(postmaster_pid(state), signal.SIGKILL)
    finally:
        starter.join(90)
    assert not failed, failed
    assert t.log_lines("embedded database died"), t.log_tail(30)
    tid = t.create_task("hello", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
