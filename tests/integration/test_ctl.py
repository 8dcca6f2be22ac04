"""tasker-ctl against a live taskerd (issue 5, acceptance 1-3).

Every command runs against a real taskerd; its --json output must parse and
equal the API's answer to the same request, its human output must carry the
key facts, and its exit code must say what happened: 0 ok, 1 the API
answered an error, 2 usage error, 3 unreachable server, and for `task
watch` 0 (complete) or 4 (error or cancelled).

`task show` of a running onboarding-shaped task (a; b and c in parallel; d;
e) is compared byte for byte with a golden text: c is an http step the
`service` fixture holds, so the task stays frozen mid-run while we look,
and TASKER_CTL_NOW pins the clock the running step's duration is measured
against.
"""

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import harness

NS = "ctl"


# ---------------------------------------------------------------------------
# Running tasker-ctl

def ctl_bin():
    return os.environ.get("TASKER_CTL") or str(harness.REPO / "tasker-ctl")


def ctl_env(extra=None):
    env = harness.clean_env()
    for k in ("TASKER_URL", "TASKER_TOKEN", "TASKER_CTL_NOW", "NO_COLOR",
              "TERM"):
        env.pop(k, None)
    # Hermetic: never a config file of whoever runs the tests.
    env["TASKER_CTL_CONFIG"] = "/nonexistent/tasker-ctl.conf"
    env.update(extra or {})
    return env


def ctl(*args, url=None, env=None, stdin=None, timeout=30):
    """Run tasker-ctl [--url URL] ARGS; CompletedProcess with text output."""
    argv = [ctl_bin()]
    if url is not None:
        argv += ["--url", url]
    argv += [str(a) for a in args]
    assert os.access(ctl_bin(), os.X_OK), "%s is not built" % ctl_bin()
    return subprocess.run(argv, env=ctl_env(env), input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def ok(r):
    assert r.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        r.returncode, r.stdout, r.stderr)
    return r.stdout


def ctl_json(t, *args):
    """--json output of a command that must succeed, parsed; t is a
    Taskerd or a URL."""
    url = t if isinstance(t, str) else t.url
    return json.loads(ok(ctl("--json", *args, url=url)))


def api(t, path):
    r = t.get(path)
    assert r.status == 200, (path, r.status, r.body)
    return r.body


def subset(have, want):
    """Every member of want is in have with the same value."""
    return all(k in have and have[k] == v for k, v in want.items())


def rows(text):
    """A table's lines as lists of cells (split on runs of 2+ blanks)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()
            if line.strip()]


# ---------------------------------------------------------------------------
# What the renderer prints, computed independently

def parse_ts(s):
    """RFC 3339 from the API -> microseconds since the epoch."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                 r"(Z|[+-]\d\d(?::?\d\d)?)$", s)
    assert m, s
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    frac = int(((m.group(7) or "") + "000000")[:6])
    dt = datetime(y, mo, d, h, mi, sec, tzinfo=timezone.utc)
    tz = m.group(8)
    if tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        dt -= timedelta(seconds=sign * off)
    return int(dt.timestamp()) * 1000000 + frac


def fmt_ts(us):
    return datetime.fromtimestamp(us // 1000000, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ")


def iso(us):
    return datetime.fromtimestamp(us // 1000000, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % 1000000)


def fmt_ms(ms):
    if ms < 1000:
        return "%dms" % ms
    if ms < 60000:
        return "%ds" % (ms // 1000) if ms % 1000 // 100 == 0 else \
            "%d.%ds" % (ms // 1000, ms % 1000 // 100)
    if ms < 3600000:
        return "%dm%02ds" % (ms // 60000, ms % 60000 // 1000)
    return "%dh%02dm" % (ms // 3600000, ms % 3600000 // 60000)


def step_ms(step):
    return (parse_ts(step["completed_at"]) - parse_ts(step["started_at"])) // 1000


# ---------------------------------------------------------------------------
# Templates

def noop(name, deps=(), config=None, limit=None):
    text = "  - name: %s\n    handler: noop\n" % name
    if limit:
        text += "    default_retry_limit: %d\n" % limit
    if deps:
        text += "    depends_on_steps: [%s]\n" % ", ".join(deps)
    if config:
        text += "    handler_config: %s\n" % config
    return text


def http(name, url, deps=(), limit=None, backoff=None):
    text = "  - name: %s\n    handler: http\n" % name
    if limit:
        text += "    default_retry_limit: %d\n" % limit
    if backoff:
        text += "    backoff: %s\n" % backoff
    if deps:
        text += "    depends_on_steps: [%s]\n" % ", ".join(deps)
    text += "    handler_config: { method: POST, url: \"%s\" }\n" % url
    return text


def template(name, *steps, version="1.0.0", extra=""):
    return ("name: %s\nnamespace_name: %s\nversion: %s\n%sstep_templates:\n"
            % (name, NS, version, extra)) + "".join(steps)


HELLO = template("hello", noop("greet", config="{ results: { hi: 1 } }"),
                 noop("bye", deps=("greet",)),
                 extra="description: Says hello\n")


def onboarding(svc_url):
    """The seed's shape: a; b and c in parallel; d after both; e."""
    return template("onboarding",
                    noop("a"),
                    noop("b", deps=("a",), config="{ sleep_ms: 50 }"),
                    http("c", svc_url + "/hold", deps=("a",)),
                    noop("d", deps=("b", "c")),
                    noop("e", deps=("d",)),
                    extra="description: A; B and C in parallel; D; E\n")


def hold_route(service, path):
    """A route that answers only once released (a frozen http step)."""
    gate = threading.Event()
    service.route("POST", path, lambda req: (gate.wait(60), (200, {"ok": 1}))[1])
    return gate


# ---------------------------------------------------------------------------
# Usage, help, reachability: no daemon needed

COMMANDS = [["tasks", "list"], ["task", "show"], ["task", "create"],
            ["task", "watch"], ["task", "cancel"], ["task", "history"],
            ["step", "retry"], ["step", "resolve"], ["step", "complete"],
            ["step", "show"], ["step", "history"], ["templates", "list"],
            ["templates", "show"], ["template", "validate"], ["workers"],
            ["services"], ["nodes"], ["health"]]


def test_help_on_every_command():
    r = ctl("--help")
    out = ok(r)
    for words in COMMANDS:
        assert " ".join(words) in out, words
    for words in COMMANDS:
        out = ok(ctl(*(words + ["--help"])))
        assert out.startswith("usage: tasker-ctl [global options] %s"
                              % " ".join(words)), out
        assert "--json" in out and "--url" in out, out
    assert "--reason TEXT" in ok(ctl("step", "retry", "--help"))
    assert "--results" in ok(ctl("step", "complete", "-h"))
    assert "task watch" in ok(ctl("task", "--help"))
    assert "task show" in ok(ctl("help", "task", "show"))
    assert re.match(r"tasker-ctl \d", ok(ctl("--version")))


def test_usage_errors_exit_2():
    cases = [
        [],                                         # no command
        ["frobnicate"],                             # unknown command
        ["task"],                                   # group without command
        ["task", "frob"],
        ["task", "show"],                           # missing ID
        ["task", "show", "1", "2"],                 # one too many
        ["tasks", "list", "--bogus"],               # unknown option
        ["tasks", "list", "--limit", "0"],
        ["tasks", "list", "--limit", "x"],
        ["tasks", "list", "--status"],              # missing value
        ["--json=1", "health"],
        ["task", "create", "ns/"],
        ["task", "create", "ns/x", "--context", "{not json"],
        ["task", "create", "ns/x", "--context", "[1, 2]"],
        ["task", "create", "ns/x", "--context", "@/nonexistent/file"],
        ["task", "watch", "1", "--interval", "-5"],
        ["step", "retry", "1", "a"],                # --reason is required
        ["step", "resolve", "1", "a", "--reason", ""],
        ["step", "retry", "1", "a", "--reason", "r", "--results", "{}"],
        ["step", "complete", "1", "a", "--reason", "r", "--results", "x"],
        ["templates", "show", "noslash"],
        ["template", "validate"],
        ["workers", "extra"],
        # An empty ID ("$id" after a failed create) asked for the task list.
        ["task", "show", ""],
        ["task", "watch", ""],
        ["task", "cancel", ""],
        ["step", "show", "1", ""],
        ["template", "validate", ""],
    ]
    for args in cases:
        # An unreachable URL: a usage error must be found before any request.
        r = ctl(*args, url="http://127.0.0.1:1")
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.startswith("tasker-ctl: ") or "usage:" in r.stderr, \
            (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)


def test_a_context_integer_past_64_bits_is_named():
    """A --context integer past 64 bits is valid JSON, which taskerd too
    holds in 64 bits: said as the server says it, with what to do, not as
    "not valid JSON: too big integer"."""
    r = ctl("task", "create", "ns/x", "--context",
            '{"x": 123456789012345678901234567890}', url="http://127.0.0.1:1")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith(
        "tasker-ctl: --context has an integer that does not fit in 64 bits "
        "(line 1, column 36): send it as a string, or as a real (1e19)"), \
        r.stderr


def test_unreachable_server_exits_3():
    port = harness.free_port()
    url = "http://127.0.0.1:%d" % port
    for args in (["health"], ["tasks", "list"], ["task", "show", "1"],
                 ["--json", "workers"], ["task", "watch", "1"],
                 ["step", "retry", "1", "a", "--reason", "r"]):
        r = ctl(*args, url=url)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "cannot reach" in r.stderr and url in r.stderr, r.stderr
        assert "connect" in r.stderr.lower(), r.stderr     # curl's reason
    # TASKER_URL is the default for --url; --url wins over it.
    r = ctl("health", env={"TASKER_URL": url})
    assert r.returncode == 3 and url in r.stderr, r.stderr
    r = ctl("health", url="unix:/nonexistent/taskerd.sock")
    assert r.returncode == 3 and "unix:/nonexistent/taskerd.sock" in r.stderr, r.stderr


def test_token_url_and_foreign_errors(service):
    """Against a fake server: the bearer token is sent (--token or
    TASKER_TOKEN), TASKER_URL is used, and an error that is not taskerd's
    JSON still exits 1 with the HTTP status."""
    service.route("GET", "/v1/workers", status=200, body={"workers": []})
    service.route("GET", "/v1/services", status=502, body="Bad Gateway\n")
    service.route("GET", "/v1/tasks/7", status=404,
                  body={"error": {"code": "not_found",
                                  "message": "no such task"}})
    ok(ctl("workers", "--token", "s3cret", url=service.url + "/"))
    ok(ctl("workers", env={"TASKER_URL": service.url,
                           "TASKER_TOKEN": "from-env"}))
    ok(ctl("workers", url=service.url))
    auth = [r.headers.get("Authorization") for r in
            service.requests_for("/v1/workers")]
    assert auth == ["Bearer s3cret", "Bearer from-env", None], auth
    assert all(r.headers.get("Accept") == "application/json"
               for r in service.requests_for("/v1/workers"))

    r = ctl("services", url=service.url)
    assert r.returncode == 1, r
    assert "HTTP 502: Bad Gateway" in r.stderr, r.stderr
    r = ctl("task", "show", "7", url=service.url)
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr == "tasker-ctl: not_found: no such task\n", r.stderr
    # With --json the error answer is on stdout as well, for scripts.
    r = ctl("--json", "task", "show", "7", url=service.url)
    assert r.returncode == 1, r
    assert json.loads(r.stdout) == {"error": {"code": "not_found",
                                              "message": "no such task"}}


def test_tasks_list_follows_the_cursor(service):
    """Against a fake API with 1200 tasks: pages are followed up to
    --limit and no further, 500 (the API's largest page) at a time."""
    ids = list(range(1200, 0, -1))

    def page(req):
        limit = int(req.query["limit"])
        below = int(req.query.get("cursor", 10 ** 9))
        chunk = [i for i in ids if i < below][:limit]
        more = len([i for i in ids if i < below]) > limit
        return 200, {"tasks": [{"task_id": i, "namespace": "n", "name": "t",
                                "version": "1", "status": "complete",
                                "created_at": "2026-11-25T12:00:00+00:00"}
                               for i in chunk],
                     "next_cursor": str(chunk[-1]) if more else None}
    service.route("GET", "/v1/tasks", page)

    out = ok(ctl("tasks", "list", "--limit", "700", "--status", "complete",
                 url=service.url))
    table = rows(out)
    assert [int(r[0]) for r in table[1:]] == ids[:700]
    assert table[1][1:] == ["complete", "n/t", "1", "2026-11-25 12:00:00Z"]
    reqs = service.requests_for("/v1/tasks")
    assert [r.query for r in reqs] == [
        {"status": "complete", "limit": "500"},
        {"status": "complete", "limit": "200", "cursor": str(ids[499])}]

    got = ctl_json(service.url, "tasks", "list",
                   "--limit", "1100")
    assert [x["task_id"] for x in got["tasks"]] == ids[:1100]
    assert got["next_cursor"] == str(ids[1099])
    got = ctl_json(service.url, "tasks", "list",
                   "--limit", "5000")
    assert [x["task_id"] for x in got["tasks"]] == ids
    assert got["next_cursor"] is None

    # The default is one page of 50, and a note says there are more.
    n = len(service.requests_for("/v1/tasks"))
    r = ctl("tasks", "list", url=service.url)
    assert len(rows(ok(r))) == 51, r
    assert r.stderr == "(more than 50 tasks: --limit shows more)\n", r.stderr
    assert [x.query for x in service.requests_for("/v1/tasks")[n:]] == \
        [{"limit": "50"}]
    r = ctl("tasks", "list", "--limit", "1", url=service.url)
    assert r.stderr == "(more than 1 task: --limit shows more)\n", r.stderr


# ---------------------------------------------------------------------------
# template validate (offline; acceptance 3)

def test_template_validate_with_taskerds_config(tmp_path):
    """A config's steps: defaults change what a file means: a step's
    backoff.base past the config's backoff.max is refused by taskerd
    --check, and was passed by validate, which knew only the built-in
    defaults.  With --config it says what taskerd says."""
    tpl = tmp_path / "slow_backoff.yaml"
    tpl.write_text("name: slow\nstep_templates:\n  - name: a\n"
                   "    handler: noop\n    backoff: { base: 1m }\n")
    conf = tmp_path / "taskerd.yaml"
    conf.write_text("steps:\n  backoff: { base: 1s, max: 30s }\n")
    assert ok(ctl("template", "validate", tpl)) == "%s: ok\n" % tpl
    r = ctl("template", "validate", "--config", conf, tpl)
    assert r.returncode == 1, r
    assert r.stderr == "%s:5: step \"a\": backoff.base (60000 ms) is " \
        "longer than backoff.max (30000 ms), which caps every delay\n" % \
        tpl, r.stderr
    # A config that does not load is said, not taken for the defaults.
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: {}\n")
    r = ctl("template", "validate", "--config", bad, tpl)
    assert r.returncode == 2 and "unknown key 'stepz'" in r.stderr, r


def test_template_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(HELLO)
    unknown_dep = tmp_path / "unknown_dep.yaml"
    unknown_dep.write_text(template("broken", noop("a"),
                                    noop("b", deps=("a",)),
                                    noop("c", deps=("a", "nope"))))
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(template("loop", noop("a", deps=("c",)),
                              noop("b", deps=("a",)), noop("c", deps=("b",))))
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("name: k\nstep_templates:\n  - name: a\n"
                       "    handler: noop\n    retries_please: 3\n")

    out = ok(ctl("template", "validate", good))
    assert out == "%s: ok\n" % good, out
    examples = sorted(str(p) for p in
                      (harness.REPO / "examples").glob("*/templates/*.yaml"))
    examples.append(str(harness.REPO / "etc/templates/hello_world.yaml"))
    out = ok(ctl("template", "validate", *examples))
    assert out.splitlines() == ["%s: ok" % p for p in examples], out

    r = ctl("template", "validate", good, unknown_dep, cycle, bad_key,
            tmp_path / "missing.yaml")
    assert r.returncode == 1, r
    assert r.stdout == "%s: ok\n" % good, r.stdout
    errs = r.stderr.splitlines()
    assert len(errs) == 5 - 1, errs
    # FILE:LINE: reason, the line being where the problem is written.
    nope_line = unknown_dep.read_text().splitlines().index(
        "    depends_on_steps: [a, nope]") + 1
    assert re.match(r"%s:%d: .*nope" % (re.escape(str(unknown_dep)), nope_line),
                    errs[0]), errs
    assert re.match(r"%s:\d+: .*cycle" % re.escape(str(cycle)), errs[1]), errs
    assert re.match(r"%s:5: .*retries_please" % re.escape(str(bad_key)),
                    errs[2]), errs
    assert errs[3].startswith(str(tmp_path / "missing.yaml") + ":"), errs

    # Files are checked against each other too, as one templates
    # directory would load them: 1.0.0 of a template twice, a route twice.
    again = tmp_path / "again.yaml"
    again.write_text(HELLO.replace("version: 1.0.0", "version: 1.0"))
    assert "version: 1.0\n" in again.read_text()
    r = ctl("template", "validate", good, again)
    assert r.returncode == 1 and r.stdout == "%s: ok\n" % good, r
    assert r.stderr == "%s: template %s/hello version 1.0 is already " \
        "defined in %s, as 1.0.0\n" % (again, NS, good), r.stderr
    # What loads but cannot run here yet is said, as taskerd --check does.
    later = tmp_path / "later.yaml"
    later.write_text(template("later", "  - name: run\n    handler: exec\n"
                              "    handler_config: { command: "
                              "[./no-such-program] }\n"))
    r = ctl("template", "validate", later)
    assert r.returncode == 0 and r.stdout == "%s: ok\n" % later, r
    assert r.stderr.startswith("warning: %s:" % later) and \
        "no program %s/no-such-program to run" % tmp_path in r.stderr, r
    # The same file twice (a glob and its name) is no duplicate.
    out = ok(ctl("template", "validate", good, str(good)))
    assert out == "%s: ok\n%s: ok\n" % (good, good), out

    # The same verdicts as JSON, and the same as taskerd --check's loader.
    r = ctl("--json", "template", "validate", good, unknown_dep)
    assert r.returncode == 1
    assert json.loads(r.stdout) == [
        {"file": str(good), "ok": True},
        {"file": str(unknown_dep), "ok": False, "error": errs[0]}]


# ---------------------------------------------------------------------------
# task show: the golden DAG (acceptance 2)

GOLDEN = """\
task {id}  ctl/onboarding@1.0.0  in_progress
created      {created}
completed    -
correlation  {corr}
initiator    golden-test
steps        2/5 done

STEP                       STATE        ATTEMPTS  DURATION  NEXT ATTEMPT  LAST ERROR
a                          complete     1/3       {a}
├── b                      complete     1/3       {b}
│   └── d (also after c)   pending      0/3
│       └── e              pending      0/3
└── c                      in_progress  1/3       2.5s
    └── d (drawn under b)
"""

GOLDEN_ASCII = GOLDEN.replace("├── ", "|-- ").replace("└── ", "`-- ") \
    .replace("│   ", "|   ")


def test_task_show_golden(taskerd, service):
    gate = hold_route(service, "/hold")
    try:
        t = taskerd(templates={"onboarding.yaml": onboarding(service.url)})
        out = ok(ctl("task", "create", "%s/onboarding" % NS, "--context",
                     '{"email": "x@example.com"}', "--initiator",
                     "golden-test", url=t.url))
        tid = int(out)
        # Frozen: a and b done, c held by the service, d and e waiting.
        # (A running step shows 'in_progress' once it has run ~100 ms;
        # before, it is still 'enqueued'.)
        service.wait_requests("/hold", 1, timeout=15)

        def frozen():
            task = t.task(tid)
            s = harness.steps_by_name(task)
            return task if s["b"]["status"] == "complete" and \
                s["c"]["status"] == "in_progress" else None
        task = harness.wait_until(frozen, 15, message="b complete, c running")
        s = harness.steps_by_name(task)
        assert [s[n]["status"] for n in "abcde"] == [
            "complete", "complete", "in_progress", "pending", "pending"], s

        now = parse_ts(s["c"]["started_at"]) + 2500000
        env = {"TASKER_CTL_NOW": iso(now)}
        fields = dict(id=tid, created=fmt_ts(parse_ts(task["created_at"])),
                      corr=task["correlation_id"], a=fmt_ms(step_ms(s["a"])),
                      b=fmt_ms(step_ms(s["b"])))
        want = GOLDEN.format(**fields)
        r1 = ctl("--no-color", "task", "show", tid, url=t.url, env=env)
        assert ok(r1) == want, "got:\n%s\nwant:\n%s" % (r1.stdout, want)
        # Byte-identical when run again, and without a terminal no colour
        # even without --no-color.
        r2 = ctl("task", "show", tid, url=t.url, env=env)
        assert ok(r2) == r1.stdout
        # A locale without UTF-8 draws the tree in ASCII.
        r3 = ctl("--no-color", "task", "show", tid, url=t.url,
                 env=dict(env, LC_ALL="C"))
        assert ok(r3) == GOLDEN_ASCII.format(**fields), r3.stdout

        # --json is the API's answer for the same request.
        assert ctl_json(t, "task", "show", tid) == t.task(tid)

        # The busy worker runs c: `workers` says so.
        table = rows(ok(ctl("workers", url=t.url)))
        assert table[0] == ["SLOT", "PID", "STATE", "TASK/STEP", "ATTEMPT",
                            "UPTIME", "RESTARTS"], table
        busy = [r for r in table[1:] if r[3] == "%d/c" % tid]
        assert len(busy) == 1 and busy[0][2] == "busy" and busy[0][4] == "1", table
        ws = t.workers()
        assert sorted(int(r[1]) for r in table[1:]) == sorted(w["pid"] for w in ws)
    finally:
        gate.set()

    # Released, the task runs to the end: watch exits 0.
    r = ctl("task", "watch", tid, "--interval", "50", url=t.url, timeout=30)
    assert r.returncode == 0, r
    last = r.stdout.splitlines()[-1]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ task %d complete, 5/5 "
                    r"steps done$" % tid, last), r.stdout
    shown = ok(ctl("task", "show", tid, url=t.url))
    assert "steps        5/5 done" in shown
    assert re.search(r"^completed    \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(after "
                     r"[\d.]+m?s\)$", shown, re.M), shown


def test_task_show_waiting_and_error_steps(taskerd, service):
    """A failed step shows its last error code; one waiting for a retry
    shows when the next attempt is due, relative to now."""
    service.route("POST", "/bad", status=422, body={"error": "invalid"})
    service.route("POST", "/busy", status=503, body={"error": "busy"})
    t = taskerd(templates={"mixed.yaml": template(
        "mixed",
        http("bad", service.url + "/bad", limit=1),
        http("busy", service.url + "/busy", limit=4,
             backoff="{ base: 40s, max: 40s, jitter: none }"),
        noop("after", deps=("bad", "busy")))})
    tid = t.create_task("mixed", {}, namespace=NS)["task_id"]

    def settled():
        s = harness.steps_by_name(t.task(tid))
        return s if (s["bad"]["status"], s["busy"]["status"]) == \
            ("error", "waiting_for_retry") else None
    s = harness.wait_until(settled, 15, message="bad error, busy waiting")
    nxt = parse_ts(s["busy"]["next_attempt_at"])
    env = {"TASKER_CTL_NOW": iso(nxt - 12300000)}
    out = ok(ctl("--no-color", "task", "show", tid, url=t.url, env=env))
    table = out.split("\n\n", 1)[1]
    assert rows(table) == [
        ["STEP", "STATE", "ATTEMPTS", "DURATION", "NEXT ATTEMPT", "LAST ERROR"],
        ["bad", "error", "1/1", fmt_ms(step_ms(s["bad"])), "http_422"],
        ["└── after (also after busy)", "pending", "0/3"],
        ["busy", "waiting_for_retry", "1/4", "in 12.3s", "http_503"],
        ["└── after (drawn under bad)"],
    ], table
    # Past its time the next attempt is "due".
    env = {"TASKER_CTL_NOW": iso(nxt + 1000)}
    out = ok(ctl("task", "show", tid, url=t.url, env=env))
    assert re.search(r"^busy +waiting_for_retry +1/4 +due +http_503$", out,
                     re.M), out

    # step show: the details, and --json as the API has it.
    out = ok(ctl("step", "show", tid, "bad", url=t.url))
    assert re.search(r"^status +error$", out, re.M), out
    assert re.search(r"^last error +http_422: HTTP 422", out, re.M), out
    assert re.search(r"^attempts +1/1$", out, re.M), out
    assert ctl_json(t, "step", "show", tid, "bad") == \
        api(t, "/v1/tasks/%d/steps/bad" % tid)
    out = ok(ctl("step", "show", tid, "busy", url=t.url, env=env))
    assert re.search(r"^next attempt +\S+ \S+ \(due\)$", out, re.M), out


# ---------------------------------------------------------------------------
# --json matches the API (acceptance 1)

def test_json_matches_api(taskerd, service):
    service.route("POST", "/ok", status=200, body={"id": 1})
    t = taskerd(templates={"hello.yaml": HELLO,
                           "remote.yaml": template("remote", http(
                               "call", "/ok"), extra="default_dependent_system: svc\n")},
                config={"services": {"svc": {"base_url": service.url,
                                             "concurrency": 3}}})
    ids = [t.create_task("hello", {"n": i}, namespace=NS)["task_id"]
           for i in range(3)]
    ids.append(t.create_task("remote", {}, namespace=NS)["task_id"])
    for i in ids:
        t.wait_task(i)
    tid = ids[0]

    same = [
        (["tasks", "list"], "/v1/tasks"),
        (["tasks", "list", "--limit", "2"], "/v1/tasks?limit=2"),
        (["tasks", "list", "--name", "remote"], "/v1/tasks?name=remote"),
        (["tasks", "list", "--status", "complete", "--namespace", NS],
         "/v1/tasks?status=complete&namespace=" + NS),
        (["task", "show", tid], "/v1/tasks/%d" % tid),
        (["task", "history", tid], "/v1/tasks/%d/transitions" % tid),
        (["step", "show", tid, "greet"], "/v1/tasks/%d/steps/greet" % tid),
        (["step", "history", tid, "bye"],
         "/v1/tasks/%d/steps/bye/transitions" % tid),
        (["templates", "list"], "/v1/templates"),
        (["templates", "show", NS + "/hello"], "/v1/templates/%s/hello" % NS),
        (["services"], "/v1/services"),
    ]
    for args, path in same:
        assert ctl_json(t, *args) == api(t, path), args
    # Workers: the same but for the uptime clock ticking between the calls.
    got = ctl_json(t, "workers")
    want = api(t, "/v1/workers")
    for w in got["workers"] + want["workers"]:
        w.pop("uptime_s")
    assert got == want
    # Nodes: the same but for the lease renewed between the calls.
    got = ctl_json(t, "nodes")
    want = api(t, "/v1/nodes")
    for n in got["nodes"] + want["nodes"]:
        n.pop("heartbeat_at")
        n.pop("lease_expires_at")
    assert got == want
    assert ctl_json(t, "health") == {"live": api(t, "/health/live"),
                                     "ready": api(t, "/health/ready")}

    # Human output carries the same facts.
    table = rows(ok(ctl("tasks", "list", url=t.url)))
    assert table[0] == ["ID", "STATUS", "NAMESPACE/NAME", "VERSION", "CREATED"]
    assert [int(r[0]) for r in table[1:]] == sorted(ids, reverse=True)
    assert all(r[1] == "complete" for r in table[1:]), table
    assert table[1][2:4] == [NS + "/remote", "1.0.0"], table
    assert table[-1][2] == NS + "/hello", table
    table = rows(ok(ctl("tasks", "list", "--limit", "2", url=t.url)))
    assert [int(r[0]) for r in table[1:]] == sorted(ids, reverse=True)[:2]
    table = rows(ok(ctl("tasks", "list", "--status", "error", url=t.url)))
    assert table == [["ID", "STATUS", "NAMESPACE/NAME", "VERSION", "CREATED"]]

    out = ok(ctl("task", "history", tid, url=t.url))
    table = rows(out)
    assert table[0] == ["TIME", "STEP", "FROM", "TO", "DETAILS"], table
    assert table[1][1:4] == ["(task)", "-", "pending"], table
    assert any(r[1:4] == ["greet", "in_progress", "complete"] for r in table), table
    assert table[-1][1:4] == ["(task)", "in_progress", "complete"], table
    out = ok(ctl("step", "history", tid, "bye", url=t.url))
    table = rows(out)
    assert [r[1:3] for r in table[1:]] == [["pending", "in_progress"],
                                          ["in_progress", "complete"]], table
    assert "attempt=1" in table[1][3] and "outcome=success" in table[2][3], table

    out = ok(ctl("step", "show", tid, "greet", url=t.url))
    assert re.search(r'^results +\{"hi": ?1\}$', out, re.M), out

    table = rows(ok(ctl("templates", "list", url=t.url)))
    assert table[0] == ["NAMESPACE/NAME", "VERSION", "STEPS", "IDENTITY",
                        "DESCRIPTION"]
    assert [NS + "/hello", "1.0.0", "2", "always_unique", "Says hello"] in table
    out = ok(ctl("templates", "show", NS + "/hello", url=t.url))
    assert out.splitlines()[:2] == [NS + "/hello@1.0.0  identity always_unique",
                                    "Says hello"], out
    assert rows(out.split("\n\n", 1)[1]) == [
        ["STEP", "HANDLER", "ATTEMPTS", "TIMEOUT", "SERVICE"],
        ["greet", "noop", "3", "30s"],
        ["└── bye", "noop", "3", "30s"]], out
    out = ok(ctl("templates", "show", NS + "/remote", url=t.url))
    assert re.search(r"^call +http +3 +30s +svc$", out, re.M), out
    r = ctl("templates", "show", NS + "/nope", url=t.url)
    assert r.returncode == 1 and "unknown_template" in r.stderr, r

    table = rows(ok(ctl("services", url=t.url)))
    assert table[0][:5] == ["NAME", "BREAKER", "INFLIGHT/LIMIT", "CALLS",
                            "FAILURES"], table
    assert table[1][:5] == ["svc", "closed", "0/3", "1", "0"], table
    out = ok(ctl("health", url=t.url))
    assert out == "live   ok\nready  ready (database ok, lease held, workers 2/2 up)\n", out
    # A URL with a wrong prefix: the reason, not "live ?".
    r = ctl("health", url=t.url + "/api")
    assert r.returncode == 1 and r.stdout == "" and \
        "not_found" in r.stderr, (r.stdout, r.stderr)

    # One node, this one: alive, nothing claimed (every task is done).
    # (Asked again if the node renewed its lease between the two reads.)
    for _ in range(5):
        node = api(t, "/v1/nodes")["nodes"][0]
        beat = parse_ts(node["heartbeat_at"])
        table = rows(ok(ctl("nodes", url=t.url,
                            env={"TASKER_CTL_NOW": iso(beat + 2500000)})))
        if api(t, "/v1/nodes")["nodes"][0]["heartbeat_at"] == \
                node["heartbeat_at"]:
            break
    assert table[0] == ["NODE", "HOST", "PID", "VERSION", "STATE", "CLAIMED",
                        "HEARTBEAT", "STARTED"], table
    assert table[1][:7] == [node["node_id"] + " (this)", node["host"],
                            str(t.pid), node["version"], "alive", "0",
                            "2.5s ago"], table
    assert table[1][7] == fmt_ts(parse_ts(node["started_at"])), table


# ---------------------------------------------------------------------------
# create, cancel, watch, not found

def test_create_cancel_watch(taskerd):
    t = taskerd(templates={
        "hello.yaml": HELLO,
        "hello2.yaml": HELLO.replace("version: 1.0.0", "version: 2.0.0"),
        "slow.yaml": template("slow", noop("wait", config="{ sleep_ms: 3000 }"),
                              noop("never", deps=("wait",))),
        "keyed.yaml": template("keyed", noop("one"),
                               extra="identity_strategy: caller_provided\n")})

    # The id alone on stdout; the options reach the task.
    ctx = {"user": {"email": "a@example.com"}, "n": 3}
    out = ok(ctl("task", "create", NS + "/hello@1.0.0", "--context",
                 json.dumps(ctx), "--initiator", "ops-bob", "--reason",
                 "smoke test", url=t.url))
    assert re.fullmatch(r"\d+\n", out), out
    task = t.task(int(out))
    assert (task["version"], task["context"], task["initiator"],
            task["reason"]) == ("1.0.0", ctx, "ops-bob", "smoke test"), task

    # --json: the API's whole answer; no version means the highest.
    ctxfile = t.workdir + "/ctx.json"
    with open(ctxfile, "w") as f:
        json.dump({"from": "file"}, f)
    created = ctl_json(t, "task", "create", NS + "/hello", "--context",
                       "@" + ctxfile)
    assert created["version"] == "2.0.0" and created["context"] == {"from": "file"}
    assert [s["name"] for s in created["steps"]] == ["greet", "bye"]
    out = ok(ctl("task", "create", NS + "/hello", "--context", "@-",
                 url=t.url, stdin='{"from": "stdin"}'))
    assert t.task(int(out))["context"] == {"from": "stdin"}

    # Watch a task to its end: exit 0; --json prints the task per change.
    r = ctl("--json", "task", "watch", created["task_id"], "--interval", "50",
            url=t.url)
    assert r.returncode == 0, r
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[-1] == t.task(created["task_id"]), lines[-1]
    assert lines[-1]["status"] == "complete"

    # Identity: a second task with the same key is refused, naming the first.
    k1 = ok(ctl("task", "create", NS + "/keyed", "--idempotency-key", "k-1",
                url=t.url)).strip()
    r = ctl("task", "create", NS + "/keyed", "--idempotency-key", "k-1",
            url=t.url)
    assert r.returncode == 1, r
    assert r.stderr == "tasker-ctl: duplicate_task: a task with the same " \
        "identity exists (task %s)\n" % k1, r.stderr
    shown = ok(ctl("task", "show", k1, url=t.url)).splitlines()
    assert "key          k-1" in shown, shown
    r = ctl("task", "create", NS + "/keyed", url=t.url)
    assert r.returncode == 1 and "idempotency_key_required" in r.stderr, r
    r = ctl("task", "create", NS + "/nope", url=t.url)
    assert r.returncode == 1, r
    assert r.stderr == "tasker-ctl: unknown_template: no template %s/nope\n" % NS

    # Cancel a running task: the answer, the history, then it cannot be
    # cancelled twice; watch on a cancelled task exits 4.
    slow = t.create_task("slow", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: harness.steps_by_name(t.task(slow))["wait"]
                       ["status"] == "in_progress", 10, message="slow running")
    out = ok(ctl("task", "cancel", slow, "--reason", "no longer needed",
                 "--actor", "ops-carol", url=t.url))
    assert out == "task %d: cancelled\n" % slow, out
    tr = api(t, "/v1/tasks/%d/transitions" % slow)["transitions"]
    assert subset(tr[-1]["metadata"], {"action": "cancel", "actor": "ops-carol",
                                       "reason": "no longer needed"}), tr[-1]
    r = ctl("task", "cancel", slow, url=t.url)
    assert r.returncode == 1, r
    assert r.stderr == ("tasker-ctl: invalid_state: the task is cancelled; "
                        "the action does not apply\n"), r.stderr
    r = ctl("--json", "task", "cancel", slow, url=t.url)
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["code"] == "invalid_state"
    r = ctl("task", "watch", slow, "--interval", "50", url=t.url)
    assert r.returncode == 4, r
    assert " task %d cancelled, " % slow in r.stdout, r.stdout

    # Not found: exit 1 with the API's code and message.
    for args in (["task", "show", "987654"], ["task", "history", "987654"],
                 ["task", "watch", "987654"], ["task", "cancel", "987654"],
                 ["task", "show", "abc"], ["step", "show", slow, "nope"],
                 ["step", "history", slow, "nope"],
                 ["step", "retry", "987654", "a", "--reason", "r"]):
        r = ctl(*args, url=t.url)
        assert r.returncode == 1, (args, r)
        assert re.fullmatch(r"tasker-ctl: not_found: no such (task|step)\n",
                            r.stderr), (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)


def test_watch_follows_a_task_through_a_restart(taskerd):
    """taskerd restarts under a watch (it stops listening at SIGTERM): the
    watch says so once and goes on to the task's end.  It exited 3, and a
    script's `watch || echo failed` called a healthy task failed."""
    t = taskerd(templates={
        "slow.yaml": template("slow", noop("wait", config="{ sleep_ms: 1500 }"),
                              noop("then", deps=("wait",)))})
    tid = t.create_task("slow", {}, namespace=NS)["task_id"]
    watch = subprocess.Popen([ctl_bin(), "--url", t.url, "task", "watch",
                              str(tid), "--interval", "50"], env=ctl_env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = watch.stdout.readline()
        assert " task %d " % tid in first, first
        t.stop()
        time.sleep(0.5)
        t.start()
        out, err = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0, (watch.returncode, out, err)
    assert out.splitlines()[-1].endswith(
        "task %d complete, 2/2 steps done" % tid), out
    # Refused at the listener, or a poll that went out as taskerd stopped
    # and got no answer.
    lost = err.splitlines()
    url = "%s/v1/tasks/%d" % (t.url, tid)
    assert len(lost) == 1 and lost[0].startswith((
        "tasker-ctl: cannot reach %s: " % url,
        "tasker-ctl: no answer from %s, which was reached: " % url)) and \
        lost[0].endswith("; still watching task %d" % tid), err


def test_step_actions_and_watch_error(taskerd, service):
    mode = {"fail": True, "calls": 0}

    def flaky(req):
        mode["calls"] += 1
        return (422, {"error": "no"}) if mode["fail"] else (200, {"id": 9})
    service.route("POST", "/flaky", flaky)
    t = taskerd(templates={"ops.yaml": template(
        "ops",
        http("first", service.url + "/flaky", limit=1),
        noop("second", deps=("first",)),
        noop("third", deps=("second",)))})
    tid = t.create_task("ops", {}, namespace=NS)["task_id"]

    # The task ends in error: watch exits 4 and names the failed step.
    r = ctl("task", "watch", tid, "--interval", "50", url=t.url)
    assert r.returncode == 4, r
    assert r.stdout.splitlines()[-1].endswith(
        "task %d error, 0/3 steps done, failed: first" % tid), r.stdout

    # retry: a fresh attempt, which fails again (the service says 422).
    out = ok(ctl("step", "retry", tid, "first", "--reason", "service fixed?",
                 "--actor", "ops-dave", url=t.url))
    assert out == "task %d step first: waiting_for_retry\n" % tid, out
    harness.wait_until(lambda: (lambda s: s["status"] == "error" and
                                s["attempts"] == 2)(
        api(t, "/v1/tasks/%d/steps/first" % tid)), 10,
        message="the retried attempt to fail")
    assert mode["calls"] == 2
    tr = api(t, "/v1/tasks/%d/steps/first/transitions" % tid)["transitions"]
    assert subset(tr[-3]["metadata"], {"action": "retry", "actor": "ops-dave",
                                       "reason": "service fixed?"}), tr

    # A step that is not in error cannot be retried: the API's 409.
    r = ctl("step", "retry", tid, "second", "--reason", "x", url=t.url)
    assert r.returncode == 1 and "invalid_state" in r.stderr, r

    # complete by hand, with results; --json is the API's answer.
    res = t.workdir + "/results.json"
    with open(res, "w") as f:
        json.dump({"id": 42}, f)
    got = ctl_json(t, "step", "complete", tid, "first", "--reason",
                   "done by hand", "--results", "@" + res)
    assert got["status"] == "complete" and got["results"] == {"id": 42}, got
    assert got == api(t, "/v1/tasks/%d/steps/first" % tid)
    tr = api(t, "/v1/tasks/%d/steps/first/transitions" % tid)["transitions"]
    assert tr[-1]["metadata"]["action"] == "complete_manually"
    assert tr[-1]["metadata"]["reason"] == "done by hand"
    assert tr[-1]["metadata"]["actor"], tr[-1]      # the login name
    out = ok(ctl("step", "history", tid, "first", url=t.url))
    assert "action=complete_manually" in out and 'reason="done by hand"' in out, out
    r = ctl("task", "watch", tid, "--interval", "50", url=t.url)
    assert r.returncode == 0, r

    # resolve on a finished task's step: the API refuses, exit 1.
    r = ctl("step", "resolve", tid, "third", "--reason", "x", url=t.url)
    assert r.returncode == 1 and "invalid_state" in r.stderr, r

    # resolve on a pending step of another task.
    t2 = t.create_task("ops", {}, namespace=NS)["task_id"]
    t.wait_task(t2, statuses=("error",))
    out = ok(ctl("step", "resolve", t2, "first", "--reason", "skip it",
                 url=t.url))
    assert out == "task %d step first: resolved_manually\n" % t2, out
    assert t.wait_task(t2)["status"] == "resolved_manually"


def test_bearer_tokens(taskerd):
    """With tokens configured the daemon enforces them: --token or
    TASKER_TOKEN gets in, a missing token or scope is the API's error
    (exit 1), and the token names the actor in the history."""
    def digest(tok):
        return hashlib.sha256(tok.encode()).hexdigest()
    t = taskerd(templates={"hello.yaml": HELLO,
                           "slow.yaml": template("slow", noop(
                               "wait", config="{ sleep_ms: 1500 }"))},
                config={"auth": {"tokens": [
                    {"name": "viewer", "sha256": digest("view-tok"),
                     "scopes": ["read"]},
                    {"name": "oncall", "sha256": digest("admin-tok"),
                     "scopes": ["admin"]}]}})
    r = ctl("tasks", "list", url=t.url)
    assert r.returncode == 1, r
    assert r.stderr == "tasker-ctl: unauthorized: a bearer token is required\n", r.stderr
    r = ctl("tasks", "list", "--token", "wrong", url=t.url)
    assert r.returncode == 1 and "unauthorized: unknown bearer token" in r.stderr, r
    ok(ctl("tasks", "list", "--token", "view-tok", url=t.url))
    ok(ctl("health", url=t.url))                # /health/* needs no token

    r = ctl("task", "create", NS + "/slow", "--token", "view-tok", url=t.url)
    assert r.returncode == 1, r
    assert r.stderr.startswith('tasker-ctl: forbidden: token "viewer" lacks '
                               'the "write" scope'), r.stderr
    env = {"TASKER_TOKEN": "admin-tok"}
    tid = int(ok(ctl("task", "create", NS + "/slow", url=t.url, env=env)))
    out = ok(ctl("task", "cancel", tid, "--reason", "drill", "--actor",
                 "alice", url=t.url, env=env))
    assert out == "task %d: cancelled\n" % tid, out
    tr = api_auth(t, "/v1/tasks/%d/transitions" % tid, "admin-tok")
    assert subset(tr["transitions"][-1]["metadata"], {
        "action": "cancel", "actor": "oncall", "on_behalf_of": "alice",
        "reason": "drill"}), tr["transitions"][-1]
    out = ok(ctl("task", "history", tid, url=t.url, env=env))
    assert "actor=oncall" in out and "on_behalf_of=alice" in out, out


def api_auth(t, path, token):
    r = t.get(path, headers={"Authorization": "Bearer " + token})
    assert r.status == 200, (path, r.status, r.body)
    return r.body


# ---------------------------------------------------------------------------
# Colours: only on a terminal, and NO_COLOR / --no-color turn them off

def run_on_pty(argv, env, columns=None):
    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 24, columns, 0, 0))
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE, env=env)
        os.close(slave)
        slave = None
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:         # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        p.wait(10)
        return p.returncode, out.decode()
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def test_colours_only_on_a_terminal(taskerd):
    t = taskerd(templates={"hello.yaml": HELLO})
    tid = t.create_task("hello", {}, namespace=NS)["task_id"]
    t.wait_task(tid)
    argv = [ctl_bin(), "--url", t.url, "task", "show", str(tid)]
    env = ctl_env({"TERM": "xterm"})
    rc, out = run_on_pty(argv, env)
    assert rc == 0 and "\033[32mcomplete\033[0m" in out, repr(out)
    rc, out = run_on_pty(argv, dict(env, NO_COLOR="1"))
    assert rc == 0 and "complete" in out and "\033[" not in out, repr(out)
    rc, out = run_on_pty(argv + ["--no-color"], env)
    assert rc == 0 and "complete" in out and "\033[" not in out, repr(out)
    r = ctl("task", "show", tid, url=t.url, env={"TERM": "xterm"})
    assert "\033[" not in ok(r)

    # watch on a terminal: a progress bar redrawn in place, then a newline.
    rc, out = run_on_pty([ctl_bin(), "--url", t.url, "task", "watch",
                          str(tid)], env)
    assert rc == 0, out
    assert out.startswith("\r[") and "2/2 steps done" in out, repr(out)
    assert out.endswith("\n") and out.count("\n") == 1, repr(out)


def test_control_characters_from_clients_reach_no_terminal(taskerd):
    """A task's reason or initiator is any client's text: an escape
    sequence in it would act on the operator's terminal, a newline forge
    a line.  tasker-ctl shows each control character as a space."""
    t = taskerd(templates={"hello.yaml": HELLO})
    evil = "x\u001b[31mRED\nstatus       complete\u009b2J\u0007"
    r = t.post("/v1/tasks", json={"name": "hello", "namespace": NS,
                                  "context": {}, "reason": evil,
                                  "initiator": evil})
    assert r.status == 201, r.body
    tid = r.body["task_id"]
    t.wait_task(tid)
    out = ok(ctl("task", "show", tid, url=t.url))
    assert "\033" not in out and "\u009b" not in out and "\a" not in out, \
        repr(out)
    reason = [line for line in out.splitlines() if line.startswith("reason")]
    assert reason == ["reason       x [31mRED status       complete 2J "], \
        repr(out)
    # The server's error messages, quoted on stderr, the same.
    r = ctl("task", "create", NS + "/no\u001b[2Jsuch", url=t.url)
    assert r.returncode == 1 and "no [2Jsuch" in r.stderr, repr(r.stderr)
    assert "\033" not in r.stderr, repr(r.stderr)


def test_config_file_url_and_token(taskerd, tmp_path):
    import hashlib
    token = "cfg-5e2a91"
    t = taskerd(config={"auth": {"tokens": [{
        "name": "from-file", "scopes": ["read"],
        "sha256": hashlib.sha256(token.encode()).hexdigest()}]}})
    conf = tmp_path / "config"
    conf.write_text("# tasker-ctl\nurl = %s\ntoken = %s\n" % (t.url, token))
    os.chmod(str(conf), 0o600)
    env = {"TASKER_CTL_CONFIG": str(conf)}
    # No --url and no TASKER_* variables: both come from the file.
    r = ctl("--json", "tasks", "list", env=env)
    assert r.returncode == 0, r.stderr
    # The environment wins over the file.
    r = ctl("tasks", "list", env=dict(env, TASKER_TOKEN="wrong"))
    assert r.returncode == 1 and "unauthorized" in r.stderr
    # A token in a file others can read is refused, not used.
    os.chmod(str(conf), 0o644)
    r = ctl("tasks", "list", env=env)
    assert r.returncode == 1 and "chmod 600" in r.stderr


def test_killed_worker_shows_in_workers(taskerd):
    import signal
    t = taskerd(workers=2)
    before = {w["slot"]: w for w in ctl_json(t, "workers")["workers"]}
    victim = before[0]["pid"]
    assert harness.proc_ppid(victim) == t.pid
    os.kill(victim, signal.SIGKILL)
    def replaced():
        ws = {w["slot"]: w for w in ctl_json(t, "workers")["workers"]}
        return ws if ws[0]["pid"] not in (0, victim) \
            and ws[0]["state"] == "idle" else None
    after = harness.wait_until(replaced, 10, message="slot 0 replaced")
    assert after[0]["restarts"] == before[0]["restarts"] + 1
    assert after[1]["restarts"] == before[1]["restarts"]
    # The human table shows the same: SLOT PID STATE ... RESTARTS.
    out = ok(ctl("workers", url=t.url))
    assert out.splitlines()[0].split()[-1] == "RESTARTS", out
    row = [l.split() for l in out.splitlines() if l.split()[:1] == ["0"]]
    assert row and row[0][1] == str(after[0]["pid"]), out
    assert row[0][-1] == str(after[0]["restarts"]), out


def test_reals_under_a_comma_locale(taskerd, tmp_path):
    """tasker-ctl follows the user's locale; JSON's decimal point does not.
    Under de_DE (a comma) a context's 19.99 still goes out and comes back
    as 19.99."""
    if shutil.which("localedef") is None or not os.path.isdir(
            "/usr/share/i18n/locales"):
        pytest.fail("localedef and the locale sources are needed (Debian "
                    "package `locales`, installed by scripts/install-deps)")
    locdir = tmp_path / "locales"
    locdir.mkdir()
    r = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8",
                        str(locdir / "de_DE.UTF-8")],
                       capture_output=True, text=True, timeout=120)
    assert (locdir / "de_DE.UTF-8").is_dir(), r.stderr
    # glibc's setlocale keeps the LOCPATH list it parsed and drops the
    # pointer: LeakSanitizer (in the sanitized pass) calls that a leak.
    supp = tmp_path / "lsan.supp"
    supp.write_text("leak:__argz_add_sep\n")
    env = {"LOCPATH": str(locdir), "LC_ALL": "de_DE.UTF-8",
           "LSAN_OPTIONS": "suppressions=%s" % supp}
    # The locale really has a comma (or this test proves nothing).
    r = subprocess.run(["printf", "%.2f", "19.99"], env=dict(
        harness.clean_env(), **env), capture_output=True, text=True)
    assert r.stdout == "19,99", r.stdout

    t = taskerd(templates={"hello.yaml": HELLO})
    r = ctl("--json", "task", "create", NS + "/hello", "--context",
            '{"amount": 19.99, "rate": 0.5}', url=t.url, env=env)
    created = json.loads(ok(r))
    assert created["context"] == {"amount": 19.99, "rate": 0.5}, created
    assert '"amount":19.99' in r.stdout, r.stdout
    # A history's details, reals among them (duration_ms), the same.
    t.wait_task(created["task_id"])
    out = ok(ctl("step", "history", created["task_id"], "greet", url=t.url,
                 env=env))
    assert re.search(r"duration_ms=\d+\.\d+", out), out
    assert not re.search(r"duration_ms=\d+,\d", out), out

    # An argument that is not UTF-8 would be dropped from the JSON sent.
    r = subprocess.run([ctl_bin(), "--url", t.url, "task", "cancel",
                        str(created["task_id"]), "--reason", b"caf\xe9"],
                       env=ctl_env(), capture_output=True, timeout=30)
    assert r.returncode == 2 and b"not valid UTF-8" in r.stderr, r


def test_template_name_with_a_slash(taskerd):
    """Tasker's own examples name templates "api_task/integration_yaml_
    example": the namespace ends at the first '/', and the rest is the
    name, for `task create` and `templates show` alike."""
    t = taskerd(templates={"slash.yaml": (
        "name: api_task/example\nnamespace_name: api_tests\n"
        "version: 1.2.0\nstep_templates:\n  - name: a\n    handler: noop\n")})
    tid = int(ok(ctl("task", "create", "api_tests/api_task/example@1.2.0",
                     url=t.url)).strip())
    assert t.wait_task(tid)["status"] == "complete"
    task = t.task(tid)
    assert (task["namespace"], task["name"], task["version"]) == \
        ("api_tests", "api_task/example", "1.2.0"), task
    out = ok(ctl("templates", "show", "api_tests/api_task/example", url=t.url))
    assert out.startswith("api_tests/api_task/example@1.2.0  identity"), out
    # The namespace ends at the first '/': "api_task" is not one.
    r = ctl("task", "create", "api_task/example", url=t.url)
    assert r.returncode == 1 and "unknown_template" in r.stderr, r


def test_dot_segments_are_names_not_paths(taskerd):
    """"." and ".." are looked up as the names they are; they used to be
    resolved away, so `step show ID ..` showed the task and `step retry
    ID .. --reason r` would have posted to the task's path."""
    t = taskerd(templates={"hello.yaml": HELLO})
    tid = t.create_task("hello", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    for args in (["step", "show", tid, ".."], ["step", "show", tid, "."],
                 ["task", "show", ".."]):
        r = ctl(*args, url=t.url)
        assert r.returncode == 1, (args, r)
        assert r.stdout == "", (args, r.stdout)
        assert "not_found" in r.stderr or "invalid" in r.stderr, \
            (args, r.stderr)


def test_api_on_a_unix_socket(pg, tmp_path):
    """http.listen: unix:PATH serves the API on a socket of mode 0660, so
    that taskerd's group may connect whatever the umask (the unit's 0027
    left the group without the write permission connecting takes)."""
    path = str(tmp_path / "api.sock")
    factory = harness.TaskerdFactory(pg)
    proc = None
    try:
        t = factory(templates={"hello.yaml": HELLO}, start=False)
        cfg = dict(t.config, http=dict(t.config["http"],
                                       listen="unix:" + path))
        conf = os.path.join(t.workdir, "unix.yaml")
        with open(conf, "w") as f:
            f.write(harness.to_yaml(cfg) + "\n")
        old = os.umask(0o027)
        try:
            proc = subprocess.Popen([harness.taskerd_bin(), "-c", conf],
                                    env=harness.clean_env(),
                                    stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        finally:
            os.umask(old)
        harness.wait_until(lambda: ctl("health", url="unix:" + path)
                           .returncode == 0, 30, message="ready on the socket")
        assert os.stat(path).st_mode & 0o777 == 0o660
        out = ok(ctl("task", "create", NS + "/hello", url="unix:" + path))
        assert int(out) > 0, out
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        factory.cleanup()
