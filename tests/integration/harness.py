"""Integration-test harness for taskerd (standard library only).

Three pieces, each usable on its own and wrapped as fixtures in conftest.py:

PgCluster   a throwaway PostgreSQL cluster in a fresh temporary directory,
            reachable only through a Unix socket in that directory.  As root
            the server runs as the unprivileged `postgres` system user.
Taskerd     one taskerd process with its own database, config file, template
            directory, loopback port and log file (TaskerdFactory makes them).
Service     a programmable HTTP server on 127.0.0.1 that plays the
            microservices that `http` steps call, recording every request.

Everything this module starts it stops again, by pid, also when a test fails
or the run is interrupted (try/finally in the fixtures, plus atexit).
"""

import atexit
import http.client
import http.server
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import namedtuple
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Environment variables that must not leak into the processes we start:
# libpq reads PG*, libcurl reads *_proxy (a proxy would swallow the calls
# the worker makes to the test services on 127.0.0.1).
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}


class HarnessError(Exception):
    """The test environment could not be set up (not a taskerd verdict)."""


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and k not in _PROXY_VARS}
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def notify_env(monkeypatch, path, watchdog_usec=None):
    """Taskerds started in this test get NOTIFY_SOCKET=path (and
    WATCHDOG_USEC) as under systemd."""
    extra = {"NOTIFY_SOCKET": path}
    if watchdog_usec:
        extra["WATCHDOG_USEC"] = str(watchdog_usec)
    base = clean_env
    monkeypatch.setattr(sys.modules[__name__], "clean_env",
                        lambda more=None: base(dict(extra, **(more or {}))))


def notify_messages(sock, seconds):
    """Datagrams received on a notify socket within `seconds`, with their
    arrival times."""
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            continue
        out.append((time.monotonic(), data))
    return out


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text, n=200):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def read_text(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


_LOGFMT_PAIR = re.compile(r'([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|[^ "=\\]*)(?: |$)')


def logfmt(line):
    """The fields of one logfmt line, as a dict; ValueError if it is not
    one (a value with a stray quote, a word that is no key=value)."""
    fields, pos = {}, 0
    while pos < len(line):
        m = _LOGFMT_PAIR.match(line, pos)
        if m is None:
            raise ValueError("not logfmt at column %d: %r" % (pos, line))
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        fields[m.group(1)] = value
        pos = m.end()
    return fields


def assert_logfmt(text, crash_reports=False):
    """Every complete line of a taskerd log is an event with ts, level and
    msg: what a log shipper parsing it would need.  With crash_reports
    (a test that crashes a worker on purpose), lines not our own - what a
    sanitizer build prints about the crash - are let through."""
    lines = text.split("\n")[:-1]     # the last may be still being written
    bad = []
    for line in lines:
        if crash_reports and not line.startswith("ts="):
            continue
        try:
            f = logfmt(line)
            if not {"ts", "level", "msg"} <= f.keys():
                raise ValueError("no ts, level or msg: %r" % line)
        except ValueError as e:
            bad.append(str(e))
    assert not bad, "log lines that are not logfmt events:\n" + \
        "\n".join(bad[:10])


def wait_until(predicate, timeout, interval=0.05, message="condition"):
    """Poll predicate() until it returns a truthy value; return that value.
    Raises AssertionError naming `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, message))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Processes

def proc_ppid(pid):
    """Parent pid of pid from /proc, or None when pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses.
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[1])


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def proc_alive(pid):
    """True while pid exists and is not a zombie."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def proc_soft_nofile(pid):
    """The soft limit of open files of pid."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise HarnessError("no Max open files in /proc/%d/limits" % pid)


def proc_children(ppid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and proc_ppid(int(name)) == ppid:
            kids.append(int(name))
    return kids


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


# ---------------------------------------------------------------------------
# A tiny YAML writer (block style; strings double-quoted, which YAML reads
# with JSON's escapes).  Enough for config files; templates are written by
# the tests as literal YAML text.

DELETE = object()   # config override value that removes a key


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (json.dumps(str(k)), _yaml_scalar(x))
                               for k, x in v.items()) + "}"
    raise TypeError("cannot write %r as YAML" % (v,))


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    for key, v in obj.items():
        if isinstance(v, dict) and v:
            out.append("%s%s:" % (pad, key))
            out.append(to_yaml(v, indent + 1))
        elif isinstance(v, (list, tuple)) and any(isinstance(x, dict) for x in v):
            out.append("%s%s:" % (pad, key))
            for item in v:
                block = to_yaml(item, indent + 2).splitlines()
                out.append("%s  - %s" % (pad, block[0].strip()))
                out.extend(block[1:])
        else:
            out.append("%s%s: %s" % (pad, key, _yaml_scalar(v)))
    return "\n".join(out)


def merge_config(base, overrides):
    """Deep-merge overrides into base (in place).  Keys may be dotted
    ("http.max_body"); the value DELETE removes a key."""
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        node = base
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        last = parts[-1]
        if value is DELETE:
            node.pop(last, None)
        elif isinstance(value, dict) and isinstance(node.get(last), dict):
            merge_config(node[last], value)
        else:
            node[last] = value
    return base


# ---------------------------------------------------------------------------
# HTTP client: never raises on 4xx/5xx.

Response = namedtuple("Response", "status body headers")


def http_request(host, port, method, path, json_body=None, data=None,
                 headers=None, timeout=10.0):
    """One request on a fresh connection.  Returns Response(status, body,
    headers): body is the parsed JSON when it parses, else the text;
    headers is case-insensitive (http.client.HTTPMessage)."""
    hdrs = {"Accept": "application/json"}
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif data is not None:
        body = data.encode() if isinstance(data, str) else data
        hdrs["Content-Type"] = "application/json"
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            # A server may answer early (413 before reading the whole body)
            # and close; the answer can still be waiting to be read.
            pass
        resp = conn.getresponse()
        raw = resp.read()
        status, rheaders = resp.status, resp.headers
    finally:
        conn.close()
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    return Response(status, parsed, rheaders)


# ---------------------------------------------------------------------------
# PostgreSQL

def find_pg_bindir():
    env = os.environ.get("TASKERD_PG_BINDIR")
    if env:
        return env
    if os.path.exists("/usr/lib/postgresql/15/bin/initdb"):
        return "/usr/lib/postgresql/15/bin"
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name)
                        if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return str(candidates[-1].parent)
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise HarnessError("PostgreSQL server binaries not found "
                           "(install postgresql or set TASKERD_PG_BINDIR)")


class PgCluster:
    """A private PostgreSQL cluster: initdb in a temp dir, a Unix socket in
    that dir only (no TCP), trust auth for user postgres."""

    _seq = 0

    def __init__(self, settings=None):
        """settings: postgresql.conf values that replace or add to the
        harness's (e.g. {"synchronous_commit": "on"})."""
        self.bindir = find_pg_bindir()
        self.settings = dict(settings or {})
        self.as_root = os.geteuid() == 0
        # As root the server runs as `postgres`, which must be able to reach
        # the directory: use /tmp (world-searchable), not a private $TMPDIR.
        base = os.environ.get("TASKERD_TEST_TMP") or ("/tmp" if self.as_root else None)
        self.root = tempfile.mkdtemp(prefix="taskerd-pg-", dir=base)
        self.datadir = os.path.join(self.root, "data")
        self.sockdir = self.root
        self.logfile = os.path.join(self.root, "postgres.log")
        self.port = free_port()
        self.user = "postgres"
        self.running = False
        self._closed = False
        atexit.register(self.stop)
        if len(os.path.join(self.sockdir, ".s.PGSQL.%d" % self.port)) > 100:
            raise HarnessError("socket path too long: %s" % self.sockdir)
        if self.as_root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise HarnessError("running as root needs the `postgres` system "
                                   "user (apt-get install postgresql)")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)

    # Server-side commands run as postgres when we are root.
    def _server_cmd(self, argv):
        if self.as_root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run_server(self, argv, timeout=60):
        return subprocess.run(self._server_cmd(argv), cwd=self.root,
                              env=clean_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)

    def start(self):
        r = self._run_server([os.path.join(self.bindir, "initdb"),
                              "-D", self.datadir, "--auth=trust",
                              "-U", self.user, "--no-sync", "-E", "UTF8",
                              "--locale=C", "--no-instructions"])
        if r.returncode != 0:
            raise HarnessError("initdb failed:\n" + r.stdout)
        conf = os.path.join(self.datadir, "postgresql.conf")
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": "'%s'" % self.sockdir,
            "port": str(self.port),
            "max_connections": "200",
            "synchronous_commit": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %d '",
        }
        settings.update(self.settings)
        # Written by the server user: the file belongs to it.
        text = "".join("%s = %s\n" % kv for kv in settings.items())
        with open(conf, "a") as f:
            f.write("\n# taskerd test harness\n" + text)
        return self.resume()

    def resume(self):
        """Start the server (again) on the same directory and socket."""
        r = self._run_server([os.path.join(self.bindir, "pg_ctl"), "-D",
                              self.datadir, "-l", self.logfile, "-w", "-t", "60",
                              "start"], timeout=90)
        if r.returncode != 0:
            raise HarnessError("pg_ctl start failed:\n%s\n--- server log:\n%s"
                               % (r.stdout, read_text(self.logfile)))
        self.running = True
        return self

    def pause(self):
        """Stop the server but keep the cluster, so resume() brings it back.
        Fast mode: clients' connections are terminated, and committed data
        is kept (an immediate stop could lose the last asynchronous commits,
        synchronous_commit being off here)."""
        r = self._run_server([os.path.join(self.bindir, "pg_ctl"), "-D",
                              self.datadir, "-m", "fast", "-w", "-t", "30",
                              "stop"], timeout=60)
        if r.returncode != 0:
            raise HarnessError("pg_ctl stop failed:\n" + r.stdout)
        self.running = False

    def restart_immediate(self, down_s=0):
        """Crash and restart: `pg_ctl restart -m immediate` (every backend
        dies at once, the server recovers from its WAL); with down_s, an
        immediate stop, down_s seconds down, then a start.  Commits that
        were only asynchronous may be lost: a cluster that is crashed on
        purpose wants synchronous_commit "on" (PgCluster(settings=...)).
        Returns time.monotonic() when the new server accepts connections."""
        old = self.postmaster_pid()
        pg_ctl = [os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                  "-l", self.logfile, "-m", "immediate", "-w", "-t", "60"]
        r = self._run_server(pg_ctl + ["stop" if down_s else "restart"],
                             timeout=90)
        if r.returncode != 0:
            raise HarnessError("pg_ctl failed:\n%s\n--- server log:\n%s"
                               % (r.stdout, tail(read_text(self.logfile), 40)))
        if old is not None and proc_alive(old):
            raise HarnessError("postmaster %d survived an immediate stop" % old)
        if down_s:
            self.running = False
            time.sleep(down_s)      # the outage itself
            self.resume()
        self.running = True
        return time.monotonic()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (FileNotFoundError, ValueError, PermissionError):
            return None

    def stop(self):
        """Stop (immediate) and remove the directory.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.running:
                pid = self.postmaster_pid()
                try:
                    r = self._run_server([os.path.join(self.bindir, "pg_ctl"),
                                          "-D", self.datadir, "-m", "immediate",
                                          "-w", "-t", "30", "stop"], timeout=60)
                    ok = r.returncode == 0
                except (subprocess.TimeoutExpired, OSError):
                    ok = False
                if not ok and pid and proc_alive(pid):
                    # Our own postmaster, by its pid: SIGQUIT is immediate
                    # shutdown; SIGKILL if it does not go.
                    try:
                        os.kill(pid, signal.SIGQUIT)
                        wait_until(lambda: not proc_alive(pid), 10,
                                   message="postmaster exit")
                    except (ProcessLookupError, AssertionError):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- client side (runs as the current user; trust auth) --

    def dsn(self, dbname="postgres"):
        return "host=%s port=%d dbname=%s user=%s" % (
            self.sockdir, self.port, dbname, self.user)

    def psql(self, dbname, sql, timeout=30):
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-A", "-t", "-q",
             "-v", "ON_ERROR_STOP=1", "-F", "\t",
             "-h", self.sockdir, "-p", str(self.port), "-U", self.user,
             "-d", dbname, "-c", sql],
            env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout)
        if r.returncode != 0:
            raise HarnessError("psql failed on %s: %s\n%s"
                               % (dbname, sql, r.stderr.strip()))
        return r.stdout

    def psql_background(self, dbname, sql):
        """psql running sql in the background (e.g. a transaction holding a
        lock for a while); the caller waits for the Popen it returns."""
        return subprocess.Popen(
            [os.path.join(self.bindir, "psql"), "-X", "-q",
             "-h", self.sockdir, "-p", str(self.port), "-U", self.user,
             "-d", dbname, "-c", sql],
            env=clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, dbname, sql):
        """Rows as lists of strings (tab-separated psql output; NULL is '')."""
        out = self.psql(dbname, sql)
        return [line.split("\t") for line in out.splitlines()]

    def scalar(self, dbname, sql):
        rows = self.query(dbname, sql)
        return rows[0][0] if rows else None

    def json(self, dbname, sql):
        """Rows of sql as a list of dicts with JSON-typed values."""
        # An alias no column will be called, so json_agg takes the row.
        out = self.psql(dbname, "select coalesce(json_agg(harness_row), "
                                "'[]'::json) from (%s) harness_row" % sql)
        return json.loads(out)

    def execute(self, dbname, sql):
        self.psql(dbname, sql)

    def createdb(self):
        PgCluster._seq += 1
        name = "taskerd_t%d_%s" % (PgCluster._seq, secrets.token_hex(3))
        self.psql("postgres", 'CREATE DATABASE "%s"' % name)
        return name

    def log(self):
        return read_text(self.logfile)


# ---------------------------------------------------------------------------
# taskerd

def taskerd_bin():
    return os.environ.get("TASKERD_BIN") or str(REPO / "taskerd")


def worker_bin():
    return os.environ.get("TASKERD_WORKER") or str(REPO / "taskerd-worker")


def require_binaries():
    for path in (taskerd_bin(), worker_bin()):
        if not os.access(path, os.X_OK):
            raise HarnessError("%s is not built (run `make` in %s, or set "
                               "TASKERD_BIN / TASKERD_WORKER)" % (path, REPO))


def run_cli(args, timeout=30, cwd=None):
    """Run `taskerd ARGS...` to completion (for --check and --migrate).
    Returns CompletedProcess with text stdout/stderr."""
    require_binaries()
    return subprocess.run([taskerd_bin()] + list(args), cwd=cwd or str(REPO),
                          env=clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def write_templates(directory, templates):
    os.makedirs(directory, exist_ok=True)
    for fname, text in (templates or {}).items():
        with open(os.path.join(directory, fname), "w") as f:
            f.write(text)


class Taskerd:
    """One running taskerd.  Made by TaskerdFactory; see its __call__."""

    def __init__(self, pg, workdir, db, config, name):
        self.pg = pg
        self.workdir = workdir
        self.db = db
        self.name = name
        self.config = config
        self.config_path = os.path.join(workdir, "taskerd.yaml")
        self.logfile = os.path.join(workdir, "taskerd.log")
        host, port = config["http"]["listen"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.url = "http://%s:%d" % (self.host, self.port)
        self.proc = None
        self.pid = None
        self.returncode = None
        self._stopped = False
        self.worker_pids_seen = set()
        self.crash_reports = False  # set by a test that crashes a worker
        self.launcher = []          # argv before taskerd's (it must exec it)
        self.orphans = []
        # True: start in a process group of its own, as a shell starts a
        # job (a terminal's Ctrl-C then goes to that group).
        self.own_group = False
        with open(self.config_path, "w") as f:
            f.write(to_yaml(config) + "\n")

    # -- lifecycle --

    def start(self, ready_timeout=20.0):
        require_binaries()
        self._stopped = False       # (started again after a stop)
        self._logf = open(self.logfile, "ab")
        # cwd: the source tree, as for a developer running ./taskerd there.
        self.proc = subprocess.Popen(self.launcher + [taskerd_bin(), "-c",
                                                      self.config_path],
                                     cwd=str(REPO), env=clean_env(),
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT,
                                     process_group=0 if self.own_group else None)
        self.pid = self.proc.pid
        deadline = time.monotonic() + ready_timeout
        last, interval = None, 0.02
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.returncode = code
                raise AssertionError(
                    "taskerd exited with %s before becoming ready\n--- log:\n%s"
                    % (code, self.log_tail(40)))
            try:
                r = self.get("/health/ready", timeout=2)
                last = (r.status, r.body)
                if r.status == 200:
                    # Known by pid now, so stop() can find them even if
                    # taskerd dies first.
                    self.worker_pids_seen.update(proc_children(self.pid))
                    return self
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)    # keep the log readable
        raise AssertionError("taskerd not ready after %.0fs; last answer to "
                             "GET /health/ready: %r\n--- log:\n%s"
                             % (ready_timeout, last, self.log_tail(40)))

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL.  Returns the exit code
        (negative for a signal, as subprocess reports it).  Idempotent."""
        if self.proc is None:
            return None
        if not self._stopped:
            self._stopped = True
            if self.proc.poll() is None:
                self.worker_pids_seen.update(proc_children(self.pid))
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.returncode = self.proc.returncode
            self._reap_orphans()
            self._logf.close()
        return self.returncode

    def kill(self):
        """SIGKILL the supervisor, as a crash would, and wait for it.  Its
        workers are left alone (what they do then is for the test to
        see); stop() later kills the ones that outlive it.  start() may
        run the node again (same node_id, config and port).  Returns the
        pids of its workers at the moment of the kill."""
        workers = self.workers_pids()
        self.proc.kill()
        self.proc.wait()
        self.returncode = self.proc.returncode
        self._logf.close()
        return workers

    def _reap_orphans(self):
        """Workers this taskerd started that outlived it, killed by pid."""
        wpath = os.path.realpath(worker_bin())
        deadline = time.monotonic() + 3
        for pid in sorted(self.worker_pids_seen):
            while proc_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc_alive(pid):
                argv = proc_cmdline(pid)
                parent = proc_cmdline(proc_ppid(pid) or 0)
                # An orphan has lost its taskerd; a live worker whose parent
                # is a taskerd is someone else's (a reused pid): leave it.
                if argv and os.path.basename(argv[0]) == os.path.basename(wpath) \
                        and not (parent and os.path.basename(parent[0]) == "taskerd"):
                    self.orphans.append(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def workers_pids(self):
        """Current workers of taskerd, from /proc: its children that run
        taskerd-worker (or taskerd still, just forked).  Not the embedded
        database's server, nor a dead worker's orphans on their way out."""
        kids = proc_children(self.pid)
        self.worker_pids_seen.update(kids)
        own = proc_cmdline(self.pid)[:1]
        return [k for k in kids
                if proc_cmdline(k)[:1] in (["taskerd-worker"], own)]

    # -- logs --

    def log(self):
        return read_text(self.logfile)

    def log_tail(self, n=200):
        return tail(self.log(), n)

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.log().splitlines() if rx.search(line)]

    # -- HTTP --

    def request(self, method, path, json=None, data=None, headers=None,
                timeout=10.0):
        return http_request(self.host, self.port, method, path, json_body=json,
                            data=data, headers=headers, timeout=timeout)

    def get(self, path, headers=None, timeout=10.0):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path, json=None, data=None, headers=None, timeout=10.0):
        return self.request("POST", path, json=json, data=data,
                            headers=headers, timeout=timeout)

    def patch(self, path, json=None, data=None, headers=None, timeout=10.0):
        return self.request("PATCH", path, json=json, data=data,
                            headers=headers, timeout=timeout)

    def delete(self, path, headers=None, timeout=10.0):
        return self.request("DELETE", path, headers=headers, timeout=timeout)

    # -- helpers over the API --

    def create_task(self, name, context, namespace="default", **fields):
        body = dict(name=name, namespace=namespace, context=context, **fields)
        r = self.post("/v1/tasks", json=body)
        assert r.status == 201, "POST /v1/tasks %r -> %s %r" % (body, r.status, r.body)
        return r.body

    def task(self, task_id):
        r = self.get("/v1/tasks/%s" % task_id)
        assert r.status == 200, "GET /v1/tasks/%s -> %s %r" % (task_id, r.status, r.body)
        return r.body

    def wait_task(self, task_id, statuses=("complete", "error", "cancelled",
                                           "resolved_manually"),
                  timeout=30.0):
        """Poll GET /v1/tasks/{id} until its status is one of statuses;
        return the task object."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.running:
                raise AssertionError("taskerd exited (%s) while waiting for "
                                     "task %s\n--- log:\n%s"
                                     % (self.proc.poll(), task_id, self.log_tail(40)))
            r = self.get("/v1/tasks/%s" % task_id)
            last = r
            if r.status == 200 and isinstance(r.body, dict) \
                    and r.body.get("status") in statuses:
                return r.body
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "task %s not in %s after %.0fs; last answer %s:\n%s"
                    % (task_id, statuses, timeout, last.status,
                       json.dumps(last.body, indent=1, default=str)))
            time.sleep(0.05)

    def workers(self):
        r = self.get("/v1/workers")
        assert r.status == 200, "GET /v1/workers -> %s %r" % (r.status, r.body)
        for w in r.body["workers"]:
            if isinstance(w.get("pid"), int) and proc_ppid(w["pid"]) == self.pid:
                self.worker_pids_seen.add(w["pid"])
        return r.body["workers"]


class TaskerdFactory:
    """Callable that starts taskerd instances and cleans them all up."""

    def __init__(self, pg, keep=False):
        self.pg = pg
        self.instances = []
        self.keep = keep or os.environ.get("TASKERD_KEEP_TMP") == "1"
        self._dirs = []
        self._cleaned = False
        # Also when the run is interrupted before fixtures finalize.
        atexit.register(self.cleanup)

    def base_config(self, workdir, db, workers):
        node_id = "test-%s" % os.path.basename(workdir)[-6:]
        return {
            # application_name: a node's backends in pg_stat_activity.
            "database": {"dsn": "%s application_name=%s"
                         % (self.pg.dsn(db), node_id), "pool": 4},
            "http": {"listen": "127.0.0.1:%d" % free_port()},
            "workers": {"count": workers, "path": worker_bin()},
            "templates": {"dir": os.path.join(workdir, "templates")},
            # Short backoff so retries in tests take milliseconds, not minutes.
            "steps": {"backoff": {"base": "100ms", "max": "1s"}},
            "state_dir": os.path.join(workdir, "state"),
            "node_id": node_id,
            "log": {"level": "debug"},
        }

    def __call__(self, templates=None, config=None, workers=2, start=True,
                 ready_timeout=20.0, db=None):
        """Make (and by default start) a taskerd with a fresh database.

        templates: {filename: yaml_text} written to its templates dir.
        config:    overrides merged into the generated config (dotted keys
                   allowed; harness.DELETE removes a key).
        db:        an existing database (another instance's .db) to share
                   instead of a fresh one: a second node of one cluster.
                   Each node has its own node_id, directory and port.
        """
        workdir = tempfile.mkdtemp(prefix="taskerd-it-")
        self._dirs.append(workdir)
        os.makedirs(os.path.join(workdir, "state"))
        if db is None:
            db = self.pg.createdb()
        cfg = merge_config(self.base_config(workdir, db, workers), config)
        write_templates(cfg.get("templates", {}).get("dir",
                        os.path.join(workdir, "templates")), templates)
        t = Taskerd(self.pg, workdir, db, cfg,
                    name="taskerd#%d" % (len(self.instances) + 1))
        self.instances.append(t)
        if start:
            t.start(ready_timeout=ready_timeout)
        return t

    def cleanup(self, keep=False):
        """Stop every instance; remove the directories unless keep (the
        later atexit call then leaves them alone too)."""
        if self._cleaned:
            return
        self._cleaned = True
        for t in self.instances:
            try:
                t.stop()
            except Exception:
                pass
        if not (keep or self.keep):
            for d in self._dirs:
                shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# The fake microservices

class ServiceRequest:
    """One request the service received."""

    def __init__(self, seq, method, raw_path, headers, body):
        self.seq = seq
        self.method = method
        self.raw_path = raw_path
        parts = urllib.parse.urlsplit(raw_path)
        self.path = parts.path
        self.query = dict(urllib.parse.parse_qsl(parts.query))
        self.headers = headers          # email.message.Message: case-insensitive
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None
        self.t = time.monotonic()       # arrival
        self.wall = time.time()
        self.t_end = None               # when the answer went out (monotonic)
        self.t_gone = None              # when the client hung up, if seen
        self.status = None
        self.sock = None                # the connection (wait_or_gone)

    def wait_or_gone(self, seconds):
        """Sleep up to seconds, as a slow service would, but notice the
        client hanging up meanwhile (then set t_gone and return True at
        once).  A handler that uses this tells when a call was really in
        progress: its client may be a worker that was killed."""
        import select
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                r, _, _ = select.select([self.sock], [], [], min(left, 0.05))
                if r:
                    if not self.sock.recv(1, socket.MSG_PEEK):
                        self.t_gone = time.monotonic()
                        return True
                    time.sleep(min(left, 0.05))     # more bytes: not EOF
            except (OSError, ValueError):
                self.t_gone = time.monotonic()
                return True

    def __repr__(self):
        return "<%s %s #%d>" % (self.method, self.raw_path, self.seq)


class Service:
    """A real HTTP/1.1 server on 127.0.0.1 (a thread per connection).

    route('POST', '/users', status=201, body={...}, delay=0, headers={})
    route('POST', '/users', fn) with fn(request) -> (status, body[, headers])
    Unrouted paths answer 404 {"error": "no route"}.
    """

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _read_body(self):
                te = self.headers.get("Transfer-Encoding", "")
                if "chunked" in te.lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                try:
                    body = self._read_body()
                except (ValueError, OSError):
                    return
                with service.lock:
                    req = ServiceRequest(len(service.requests), self.command,
                                         self.path, self.headers, body)
                    req.sock = self.connection
                    service.requests.append(req)
                    handler = service.routes.get((self.command, req.path))
                if handler is None:
                    status, rbody, rheaders = 404, {"error": "no route"}, {}
                else:
                    status, rbody, rheaders = handler(req)
                if isinstance(rbody, (dict, list, int, float, bool)) or rbody is None:
                    payload = b"" if rbody is None else json.dumps(rbody).encode()
                    ctype = "application/json"
                elif isinstance(rbody, str):
                    payload, ctype = rbody.encode(), "text/plain"
                else:
                    payload, ctype = bytes(rbody), "application/octet-stream"
                req.status = status
                req.t_end = time.monotonic()    # set before the client can see it
                try:
                    self.send_response(status)
                    hdrs = {"Content-Type": ctype}
                    hdrs.update(rheaders or {})
                    for k, v in hdrs.items():
                        self.send_header(k, str(v))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass    # a client (a killed worker) going away is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def route(self, method, path, handler=None, status=200, body=None, delay=0,
              headers=None):
        if handler is None:
            def handler(req, status=status, body=body, delay=delay,
                        headers=headers):
                if delay:
                    time.sleep(delay)
                return status, body, headers or {}
        fn = handler

        def normalized(req):
            out = fn(req)
            if len(out) == 2:
                return out[0], out[1], {}
            return out
        with self.lock:
            self.routes[(method.upper(), path)] = normalized

    def requests_for(self, path, method=None):
        with self.lock:
            return [r for r in self.requests
                    if r.path == path and (method is None or r.method == method)]

    def wait_requests(self, path, count=1, timeout=10.0):
        return wait_until(lambda: len(self.requests_for(path)) >= count and
                          self.requests_for(path), timeout,
                          message="%d request(s) to %s" % (count, path))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# Assertions shared by the tests

def steps_by_name(task):
    return {s["name"]: s for s in task["steps"]}


def assert_json_error(r, status, code=None):
    """r is an API error answer: the status, a JSON content type and a body
    {"error": {"code": str, "message": str}} (code checked when given)."""
    assert r.status == status, "expected %s, got %s: %r" % (status, r.status, r.body)
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), \
        "error answer has Content-Type %r: %r" % (ctype, r.body)
    assert isinstance(r.body, dict) and isinstance(r.body.get("error"), dict), \
        "error answer is not {\"error\": {...}}: %r" % (r.body,)
    err = r.body["error"]
    assert isinstance(err.get("code"), str) and err["code"], err
    assert isinstance(err.get("message"), str) and err["message"], err
    if code is not None:
        assert err["code"] == code, "error code %r, expected %r (%s)" % (
            err["code"], code, err.get("message"))
    return err


def step_transitions(pg, db, task_id):
    """Every step transition of a task in commit order, with step names and
    created_at in microseconds since the epoch."""
    return pg.json(db, """
        select st.id, s.name, st.from_state, st.to_state,
               (extract(epoch from st.created_at) * 1000000)::bigint as us
          from step_transitions st join steps s on s.id = st.step_id
         where s.task_id = %d
         order by st.id""" % int(task_id))


def row_counts(pg, db, tables=("tasks", "steps", "step_edges",
                               "task_transitions", "step_transitions")):
    return {t: int(pg.scalar(db, "select count(*) from %s" % t)) for t in tables}


# ---------------------------------------------------------------------------
# Attempts, from the audit trail (step_transitions)
#
# An attempt starts with its 'in_progress' transition (created_at: when a
# worker took the step; metadata {attempt, node}) and ends with the next
# transition that carries an outcome (metadata {attempt, outcome, error}).
# An attempt that never reached a worker, or was taken over before its
# start was written (a lost node's claim), has an end and no start.

def attempt_history(pg, db, where="true"):
    """{step_id: {"task_id", "name", "status", "attempts": {n: attempt}}}
    where attempt is {"start", "end" (epoch microseconds or None),
    "node", "outcome", "code" (the error code), "to" (state after it),
    "starts", "ends" (how many transitions claimed to start or end it)}.
    where: an SQL condition on steps s (e.g. "s.task_id = 7")."""
    rows = pg.json(db, """
        select st.step_id, s.task_id, s.name, s.status, st.from_state,
               st.to_state, st.metadata,
               (extract(epoch from st.created_at) * 1000000)::bigint as us
          from steps s join step_transitions st on st.step_id = s.id
         where %s
         order by st.step_id, st.id""" % where)
    steps = {}
    for r in rows:
        st = steps.setdefault(r["step_id"], {
            "task_id": r["task_id"], "name": r["name"],
            "status": r["status"], "attempts": {}})
        md = r["metadata"] or {}
        n = md.get("attempt")
        if not isinstance(n, int):
            continue        # operator actions, cancellation
        a = st["attempts"].setdefault(n, {
            "start": None, "end": None, "node": None, "outcome": None,
            "code": None, "to": None, "starts": 0, "ends": 0})
        if r["to_state"] == "in_progress":
            a["starts"] += 1
            a["start"] = r["us"] if a["start"] is None else a["start"]
            a["node"] = md.get("node")
        elif "outcome" in md:
            a["ends"] += 1
            if a["end"] is None:
                a["end"] = r["us"]
                a["outcome"] = md.get("outcome")
                a["to"] = r["to_state"]
                err = md.get("error")
                a["code"] = err.get("code") if isinstance(err, dict) else None
    return steps


def attempt_anomalies(history, tolerance_us=500):
    """What the audit trail must never show, as a list of strings:
    two attempts of one step whose intervals overlap; an attempt started
    or ended twice (an outcome applied from a stale claim); an attempt
    that never ended; more than one successful attempt of a step."""
    out = []
    for sid, st in sorted(history.items()):
        label = "step %d (%s, task %d)" % (sid, st["name"], st["task_id"])
        atts = st["attempts"]
        for n, a in sorted(atts.items()):
            if a["starts"] > 1 or a["ends"] > 1:
                out.append("%s attempt %d started %d and ended %d times"
                           % (label, n, a["starts"], a["ends"]))
            if a["end"] is None:
                out.append("%s attempt %d never ended" % (label, n))
        ok = [n for n, a in atts.items() if a["to"] == "complete"]
        if len(ok) > 1:
            out.append("%s has %d successful attempts %s"
                       % (label, len(ok), sorted(ok)))
        spans = sorted((a["start"] if a["start"] is not None else a["end"],
                        a["end"], n) for n, a in atts.items()
                       if a["end"] is not None)
        for i in range(len(spans)):
            for j in range(i + 1, len(spans)):
                s1, e1, n1 = spans[i]
                s2, e2, n2 = spans[j]
                if s2 < e1 - tolerance_us:
                    out.append("%s attempts %d and %d overlap: [%d, %d] "
                               "and [%d, %d] (us)" % (label, n1, n2, s1,
                                                      e1, s2, e2))
    return out


def call_overlaps(calls, tolerance_s=0.0005):
    """Calls that ran at the same time with the same idempotency key.
    calls: iterable of (key, start, end, what) with times in seconds and
    key None for calls without one.  Returns a list of strings."""
    by_key = {}
    for key, start, end, what in calls:
        if key:
            by_key.setdefault(key, []).append((start, end, what))
    out = []
    for key, spans in sorted(by_key.items()):
        spans.sort(key=lambda x: (x[0], x[1]))
        longest = spans[0]         # of the calls so far, the last to end
        for s2, e2, w2 in spans[1:]:
            s1, e1, w1 = longest
            if s2 < e1 - tolerance_s:
                out.append("two calls with Idempotency-Key %s at once: %s "
                           "[%.3f, %.3f] and %s [%.3f, %.3f]"
                           % (key, w1, s1, e1, w2, s2, e2))
            if e2 > e1:
                longest = (s2, e2, w2)
    return out
