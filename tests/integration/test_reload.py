"""SIGHUP re-reads the templates: a broken file is reported and the old
templates stay in force; a good one is served at once."""

import os
import re
import signal
import subprocess
import threading
import time

import harness

FIRST = """
name: first
step_templates:
  - name: a
    handler: noop
"""

SECOND = """
name: second
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
"""

BROKEN = """
name: broken
step_templates:
  - name: a
    handler: noop
    depends_on_step: nowhere
"""

# Its reason quotes the step's name: "a".
NO_URL = """
name: no_url
step_templates:
  - name: a
    handler: http
    handler_config: { method: POST }
"""


def refused_reload(t, tdir, name, text):
    """Write template file name, SIGHUP, and return the reasons the
    refused reload logged for it."""
    with open(os.path.join(tdir, name), "w") as f:
        f.write(text)
    os.kill(t.pid, signal.SIGHUP)
    lines = harness.wait_until(
        lambda: t.log_lines(r'msg="reload refused.*%s' % re.escape(name)),
        10, message="the refused reload of %s in the log" % name)
    return [harness.logfmt(l)["reason"] for l in lines]


def names(t):
    return sorted(x["name"] for x in t.get("/v1/templates").body["templates"])


def test_sighup_reload(taskerd):
    t = taskerd(templates={"first.yaml": FIRST})
    tdir = t.config["templates"]["dir"]
    assert names(t) == ["first"]

    with open(os.path.join(tdir, "second.yaml"), "w") as f:
        f.write(SECOND)
    reasons = refused_reload(t, tdir, "broken.yaml", BROKEN)
    assert any("broken.yaml:6:" in r and "nowhere" in r
               for r in reasons), reasons
    assert names(t) == ["first"]
    assert t.post("/v1/tasks", json={"name": "second", "context": {}}) \
        .status == 404

    # A reason with quotes in it stays one readable field of its line.
    os.unlink(os.path.join(tdir, "broken.yaml"))
    reason = refused_reload(t, tdir, "no_url.yaml", NO_URL)[0]
    assert reason.startswith(os.path.join(tdir, "no_url.yaml") + ":") and \
        'step "a": ' in reason, reason

    os.unlink(os.path.join(tdir, "no_url.yaml"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: names(t) == ["first", "second"], 10,
                       message="second template served")
    tid = t.create_task("second", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    # A task of the first template still runs too.
    tid = t.create_task("first", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.running


def test_unchanged_reload_keeps_the_templates(taskerd):
    """A reload that finds nothing changed (a periodic one) keeps the
    templates in force instead of piling up copies of them."""
    t = taskerd(templates={"first.yaml": FIRST})
    for n in range(1, 4):
        os.kill(t.pid, signal.SIGHUP)
        harness.wait_until(lambda: len(t.log_lines(
            r'msg="templates unchanged"')) == n, 10,
            message="reload %d seen as unchanged" % n)
    assert not t.log_lines(r'msg="templates reloaded"')
    tid = t.create_task("first", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"


def test_reload_says_what_needs_a_restart(taskerd):
    """Tokens and services are read at start: a reload that finds them
    changed says the old ones stay in force (an operator revoking a token
    with systemctl reload must know it still works)."""
    import hashlib
    digest = hashlib.sha256(b"old-tok").hexdigest()
    t = taskerd(templates={"first.yaml": FIRST},
                config={"auth": {"tokens": [{"name": "ops", "sha256": digest,
                                             "scopes": ["admin"]}]}})
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines('msg="templates unchanged"'), 10,
                       message="the first reload done")
    assert not t.log_lines("changed: a restart applies them"), t.log_tail(10)
    with open(t.config_path) as f:
        text = f.read()
    with open(t.config_path, "w") as f:
        f.write(text.replace(digest, hashlib.sha256(b"new").hexdigest()))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: len(t.log_lines(
        'msg="templates unchanged"')) == 2, 10, message="the second reload")
    assert t.log_lines('msg="auth.tokens changed: a restart applies them; '
                       'the tokens read at start stay in force"'), \
        t.log_tail(10)
    r = t.get("/v1/tasks", headers={"Authorization": "Bearer old-tok"})
    assert r.status == 200, r.body
    assert not t.log_lines("settings changed that a restart applies")

    # Any other setting only a restart applies is named too (workers.count
    # and database.pool were ignored without a word); the pool stays.
    cfg = dict(t.config, workers=dict(t.config["workers"], count=3),
               database=dict(t.config["database"], pool=7))
    with open(t.config_path, "w") as f:
        f.write(harness.to_yaml(cfg) + "\n")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: len(t.log_lines(
        'msg="templates unchanged"')) == 3, 10, message="the third reload")
    said = t.log_lines("settings changed that a restart applies")
    assert len(said) == 1 and harness.logfmt(said[0])["keys"] == \
        "database.pool, workers.count", said
    harness.wait_until(lambda: len(t.workers_pids()) == 2, 10,
                       message="still two workers")


def test_reload_during_a_reload_follows_it(taskerd, pg):
    """A SIGHUP while a reload is still being written (here held up by a
    lock) is not lost: the files are read again once that one is done."""
    t = taskerd(templates={"first.yaml": FIRST})
    tdir = t.config["templates"]["dir"]
    holder = pg.psql_background(
        t.db, "BEGIN; LOCK TABLE templates; SELECT pg_sleep(2); COMMIT;")
    try:
        harness.wait_until(lambda: pg.scalar(
            t.db, "select count(*) from pg_locks where relation = "
            "'templates'::regclass and granted") == "1", 5,
            message="the lock taken")
        with open(os.path.join(tdir, "second.yaml"), "w") as f:
            f.write(SECOND)
        os.kill(t.pid, signal.SIGHUP)
        harness.wait_until(lambda: t.log_lines(r'msg="reloading'), 5,
                           message="the first reload begun")
        with open(os.path.join(tdir, "third.yaml"), "w") as f:
            f.write(FIRST.replace("name: first", "name: third"))
        os.kill(t.pid, signal.SIGHUP)
        harness.wait_until(lambda: t.log_lines(
            "reload requested during a reload"), 5, message="the second")
    finally:
        holder.wait(10)
    harness.wait_until(lambda: names(t) == ["first", "second", "third"], 10,
                       message="both reloads in force")


def test_sighup_during_start_is_harmless(taskerd):
    """A SIGHUP that comes while taskerd is still starting (migrating,
    say) does not end it: the start reads the templates anyway."""
    t = taskerd(templates={"first.yaml": FIRST}, start=False)

    def hup_soon():
        # Once it runs its own code (its first log line); before that no
        # program can help it.
        harness.wait_until(lambda: t.pid is not None and "msg=" in t.log(),
                           10, interval=0.001, message="the process started")
        for _ in range(5):
            try:
                os.kill(t.pid, signal.SIGHUP)
            except ProcessLookupError:
                return
            time.sleep(0.01)
    sender = threading.Thread(target=hup_soon)
    sender.start()
    try:
        t.start()
    finally:
        sender.join()
    assert names(t) == ["first"]


def write_log_level(t, level):
    cfg = dict(t.config, log={"level": level})
    with open(t.config_path, "w") as f:
        f.write(harness.to_yaml(cfg) + "\n")


def worker_debug_lines(t):
    return t.log_lines(r'level=debug proc=taskerd-worker:\d+ msg="step start"')


def test_a_refused_reload_changes_nothing_not_even_the_log_level(taskerd):
    """The log level is applied with the templates, when the workers that
    log at it are started: a refused reload leaves both as they were
    (the supervisor logged at the new level, its workers at the old)."""
    t = taskerd(templates={"first.yaml": FIRST},
                config={"log": {"level": "info"}})
    tdir = t.config["templates"]["dir"]
    write_log_level(t, "debug")
    refused_reload(t, tdir, "broken.yaml", BROKEN)
    tid = t.create_task("first", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert not t.log_lines(r"level=debug"), t.log_lines(r"level=debug")[:5]

    os.unlink(os.path.join(tdir, "broken.yaml"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: len(t.log_lines(
        'msg="worker replaced after a reload"')) == 2, 15,
        message="both workers replaced")
    tid = t.create_task("first", {})["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.log_lines(r'level=debug proc=taskerd:\d+ msg="step dispatched"')
    assert worker_debug_lines(t), t.log_tail(20)


def test_a_worker_starting_at_a_reload_is_replaced_too(taskerd, tmp_path):
    """A worker still starting when the reload comes was started with the
    old level (and would load plugins as they were): it is replaced once
    it has said hello, like the others."""
    wrapper = tmp_path / "worker.sh"
    wrapper.write_text("#!/bin/sh\nsleep 2\nexec %s \"$@\"\n"
                       % harness.worker_bin())
    wrapper.chmod(0o755)
    t = taskerd(templates={"first.yaml": FIRST}, workers=1,
                config={"log": {"level": "info"},
                        "workers.path": str(wrapper)})
    os.kill(t.workers()[0]["pid"], signal.SIGKILL)
    harness.wait_until(lambda: len(t.log_lines(
        'msg="worker started"')) == 2, 10, message="a new worker starting")
    assert [w["state"] for w in t.workers()] == ["starting"]
    write_log_level(t, "debug")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines('msg="templates unchanged"'),
                       10, message="the reload")
    harness.wait_until(lambda: t.log_lines(
        'msg="worker replaced after a reload"'), 15,
        message="the starting worker replaced")
    tid = t.create_task("first", {})["task_id"]
    assert t.wait_task(tid, timeout=15)["status"] == "complete"
    assert worker_debug_lines(t), t.log_tail(20)


# A version whose second step says which version ran it, and what its
# parent's results were; the first is slow enough to replace the file under
# it.  An exec step with a relative program, found from the template
# directory.  Its results hold what the database's jsonb would not give
# back as written: a number past a 64-bit integer, a DEL character.
VERSIONED = """\
name: versioned
namespace_name: reload
version: @V@
step_templates:
  - name: first
    handler: noop
    handler_config:
      sleep_ms: 1500
      results: { from: "first @V@", big: 1.0e300, odd: "a\\x7fb" }
  - name: second
    handler: exec
    depends_on_step: first
    handler_config: { command: [./say.py, "@V@"] }
"""

SAY = """#!/usr/bin/python3
import json, sys
got = json.load(sys.stdin)
print(json.dumps({"version": sys.argv[1],
                  "parent": got["steps"]["first"]["results"]}))
"""


def parent(version):
    return {"from": "first " + version, "big": 1e300, "odd": "a\x7fb"}


def versioned(t, version):
    tdir = t.config["templates"]["dir"]
    with open(os.path.join(tdir, "versioned.yaml"), "w") as f:
        f.write(VERSIONED.replace("@V@", version))


def start_versioned(taskerd, more=None):
    """A node with version 1.0.0 (and the templates more), running a
    task's first step: (node, task id)."""
    t = taskerd(templates=dict(more or {}, **{
        "versioned.yaml": VERSIONED.replace("@V@", "1.0.0")}), workers=1)
    say = os.path.join(t.config["templates"]["dir"], "say.py")
    with open(say, "w") as f:
        f.write(SAY)
    os.chmod(say, 0o755)
    tid = t.create_task("versioned", {}, namespace="reload")["task_id"]
    harness.wait_until(lambda: harness.steps_by_name(t.task(tid))["first"]
                       ["status"] == "in_progress", 10,
                       message="the first step running")
    return t, tid


def assert_ran_on_its_version(t, tid):
    done = t.wait_task(tid, timeout=20)
    assert done["status"] == "complete", done
    assert done["version"] == "1.0.0", done
    second = harness.steps_by_name(done)["second"]
    assert second["results"] == {"version": "1.0.0",
                                 "parent": parent("1.0.0")}, second
    assert len(t.log_lines("loaded as stored")) == 1, t.log_tail(30)
    # New tasks get the new version.
    new = t.create_task("versioned", {}, namespace="reload")["task_id"]
    second = harness.steps_by_name(t.wait_task(new, timeout=20))["second"]
    assert second["results"] == {"version": "2.0.0",
                                 "parent": parent("2.0.0")}, second


def test_a_task_ends_on_its_version_after_a_reload_replaced_it(taskerd):
    """A new version replaces the file, and a reload follows, while a task
    of the old version runs: the task goes on to its end on its own
    version, loaded as stored.  It waited for ever: the node had no
    template for its next step and handed it back every minute."""
    t, tid = start_versioned(taskerd)
    versioned(t, "2.0.0")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates reloaded"), 10,
                       message="the reload")
    assert_ran_on_its_version(t, tid)


def test_a_task_ends_on_its_version_after_a_restart_replaced_it(taskerd):
    """The same across a restart, which loads only the new version."""
    t, tid = start_versioned(taskerd)
    t.stop()
    versioned(t, "2.0.0")
    t.start()
    assert_ran_on_its_version(t, tid)


def test_a_task_ends_on_its_version_after_a_rollback(taskerd):
    """Version 2.0.0 replaced 1.0.0 and a task of it runs; the files go
    back to 1.0.0 (a rollback) and a reload follows: the task ends on
    2.0.0, loaded as stored.  It waited for ever: only a version older
    than the files' was loaded."""
    t = taskerd(templates={"versioned.yaml": VERSIONED.replace("@V@",
                                                               "1.0.0")},
                workers=1)
    say = os.path.join(t.config["templates"]["dir"], "say.py")
    with open(say, "w") as f:
        f.write(SAY)
    os.chmod(say, 0o755)
    versioned(t, "2.0.0")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates reloaded"), 10,
                       message="the first reload")
    tid = t.create_task("versioned", {}, namespace="reload")["task_id"]
    harness.wait_until(lambda: harness.steps_by_name(t.task(tid))["first"]
                       ["status"] == "in_progress", 10,
                       message="the first step running")
    versioned(t, "1.0.0")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: len(t.log_lines("templates reloaded")) == 2,
                       10, message="the rollback's reload")
    done = t.wait_task(tid, timeout=20)
    assert done["status"] == "complete" and done["version"] == "2.0.0", done
    second = harness.steps_by_name(done)["second"]
    assert second["results"] == {"version": "2.0.0",
                                 "parent": parent("2.0.0")}, second


def test_a_task_whose_template_left_every_node_says_it_waits(taskerd):
    """The template's file is removed (no version of it left) and a
    reload follows while a task of it runs: its next step cannot run on
    any node.  The task says so, through the API and tasker-ctl, rather
    than read as 'pending' with no error and no end; once the file is
    back, the task ends."""
    from test_ctl import ctl, ok
    t, tid = start_versioned(taskerd, {"first.yaml": FIRST})
    assert "waiting" not in t.task(tid), t.task(tid)
    # A node without the template knows that t has it.
    other_node = taskerd(templates={"first.yaml": FIRST}, db=t.db)
    assert "waiting" not in other_node.task(tid), other_node.task(tid)
    tdir = t.config["templates"]["dir"]
    os.rename(os.path.join(tdir, "versioned.yaml"),
              os.path.join(str(tdir) + ".versioned.yaml"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates reloaded"), 10,
                       message="the reload")
    task = harness.wait_until(lambda: (lambda x: x if "waiting" in x
                              else None)(t.task(tid)), 15,
                              message="the task saying it waits")
    assert task["status"] == "in_progress", task
    assert task["waiting"]["code"] == "template_unavailable", task
    assert harness.steps_by_name(task)["second"]["status"] == "pending"
    harness.wait_until(lambda: "waiting" in other_node.task(tid), 15,
                       message="the other node saying it too")
    out = ok(ctl("task", "show", tid, url=t.url))
    assert re.search(r"waiting\s+no running node has this template in its "
                     r"files", out), out
    try:
        watch = ctl("task", "watch", tid, url=t.url, timeout=3).stdout
    except subprocess.TimeoutExpired as e:     # it watches on: the task runs
        watch = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout
    assert "in_progress, 1/2 steps done; no running node has this " \
        "template" in watch, watch
    os.rename(os.path.join(str(tdir) + ".versioned.yaml"),
              os.path.join(tdir, "versioned.yaml"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: len(t.log_lines("templates reloaded")) == 2,
                       10, message="the second reload")
    done = t.wait_task(tid, timeout=90)
    assert done["status"] == "complete", done


def test_a_reload_follows_a_release_switch(taskerd, tmp_path):
    """templates.dir is a symlink to the current release; a deploy points
    it at a new copy and reloads.  The definitions are the same, but the
    exec program a step names relatively is the new release's: the reload
    takes it (it said "templates unchanged" and ran the old release's
    program, which failed every step once the old release was pruned)."""
    releases = {}
    for name in ("r1", "r2"):
        d = tmp_path / name
        (d / "bin").mkdir(parents=True)
        (d / "run.yaml").write_text("""\
name: run
step_templates:
  - name: a
    handler: exec
    handler_config: { command: [./bin/h.sh] }
""")
        h = d / "bin" / "h.sh"
        h.write_text("#!/bin/sh\ncat >/dev/null\necho '{\"release\": \"%s\"}'\n"
                     % name)
        h.chmod(0o755)
        releases[name] = d
    current = tmp_path / "current"
    current.symlink_to(releases["r1"])
    t = taskerd(config={"templates.dir": str(current)})

    def release_run():
        tid = t.create_task("run", {})["task_id"]
        done = t.wait_task(tid)
        assert done["status"] == "complete", t.log_tail(30)
        return done["steps"][0]["results"]["release"]

    assert release_run() == "r1"
    nxt = tmp_path / "next"
    nxt.symlink_to(releases["r2"])
    os.replace(nxt, current)
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines('msg="templates reloaded"'), 10,
                       message="the reload")
    assert not t.log_lines('msg="templates unchanged"')
    assert release_run() == "r2"


QUOTED = """\
name: 'my "v" flow'
namespace_name: reload
version: @V@
step_templates:
  - name: first
    handler: noop
    handler_config: { sleep_ms: 1500 }
  - name: second
    handler: noop
    depends_on_step: first
"""


def test_a_stored_version_of_a_quoted_name_is_logged_as_one_field(taskerd):
    """A template name may hold spaces and quotes.  Its version loaded as
    stored for a task a reload left behind is logged as one quoted field,
    not as text that breaks the line's logfmt."""
    t = taskerd(templates={"q.yaml": QUOTED.replace("@V@", "1.0.0")},
                workers=1)
    tid = t.create_task('my "v" flow', {}, namespace="reload")["task_id"]
    harness.wait_until(lambda: harness.steps_by_name(t.task(tid))["first"]
                       ["status"] == "in_progress", 10,
                       message="the first step running")
    with open(os.path.join(t.config["templates"]["dir"], "q.yaml"), "w") as f:
        f.write(QUOTED.replace("@V@", "2.0.0"))
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("templates reloaded"), 10,
                       message="the reload")
    assert t.wait_task(tid, timeout=20)["status"] == "complete"
    (line,) = t.log_lines("loaded as stored")
    assert harness.logfmt(line)["template"] == 'reload/my "v" flow@1.0.0'
