"""The exec handler: a step run by a program, in any language.

The program gets the step input (context, parent results, attempt) as JSON
on stdin and the step's identity in its environment; exit 0 with JSON on
stdout succeeds, exit 75 is a retryable failure, any other exit a permanent
one, death by a signal is retryable.  The whole program (its own children
too, even those it moves to a session of their own) ends with the step: at
its exit, at the step's deadline, and when its worker is killed, even
outright.
"""

import json
import os
import signal
import stat
import time

import pytest

import harness

NS = "exec"

ECHO = r"""#!/usr/bin/python3
import json, os, sys
inp = json.load(sys.stdin)
json.dump({
    "email": inp["context"]["email"],
    "parent_id": inp["steps"]["make_id"]["results"]["id"],
    "attempt": inp["attempt"],
    "input_bytes": len(json.dumps(inp)),
    "greeting": os.environ.get("GREETING"),
    "task_id": os.environ.get("TASKERD_TASK_ID"),
    "step": os.environ.get("TASKERD_STEP_NAME"),
    "env_attempt": os.environ.get("TASKERD_ATTEMPT"),
    "key": os.environ.get("TASKERD_IDEMPOTENCY_KEY"),
    "correlation": os.environ.get("TASKERD_CORRELATION_ID"),
    "internal": sorted(k for k in os.environ
                       if k in ("TASKERD_MAX_FRAME", "TASKERD_LOG_LEVEL")),
    "cwd_ok": True,
}, sys.stdout)
"""

# Fails (retryably) on its first attempt, succeeds on the second.
FLAKY = r"""#!/bin/sh
attempt=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["attempt"])')
if [ "$attempt" = 1 ]; then
    echo "inventory service busy, try later" >&2
    exit 75
fi
echo '{"reserved": true}'
"""


def template(name, steps):
    return ("name: %s\nnamespace_name: %s\nversion: 1.0.0\nstep_templates:\n"
            % (name, NS)) + steps


def write_program(directory, name, text):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP
             | stat.S_IXOTH)
    return path


def step(t, task_id, name):
    for s in t.task(task_id)["steps"]:
        if s["name"] == name:
            return s
    raise AssertionError("no step %s in task %s" % (name, task_id))


def test_program_reads_its_input_and_answers_results(taskerd):
    # A relative program path is found from the template's directory,
    # whatever taskerd's working directory is.
    t = taskerd(templates={"echo.yaml": template("echo", """\
  - name: make_id
    handler: noop
    handler_config: { results: { id: 77 } }
  - name: run_echo
    handler: exec
    depends_on_step: make_id
    handler_config:
      command: [./handlers/echo.py]
      env: { GREETING: hello }
""")}, start=False)
    write_program(os.path.join(t.config["templates"]["dir"], "handlers"),
                  "echo.py", ECHO)
    t.start()
    # Bigger than a pipe's buffer: the input is written while the output
    # is read.
    ctx = {"email": "ann@example.com", "pad": "x" * 300000}
    tid = t.create_task("echo", ctx, namespace=NS)["task_id"]
    done = t.wait_task(tid)
    assert done["status"] == "complete", t.log_tail(40)
    s = step(t, tid, "run_echo")
    r = s["results"]
    assert s["attempts"] == 1, s
    assert r["email"] == "ann@example.com"
    assert r["parent_id"] == 77
    assert r["attempt"] == 1 and r["env_attempt"] == "1"
    assert r["input_bytes"] > 300000
    assert r["greeting"] == "hello"
    assert r["task_id"] == str(tid)
    assert r["step"] == "run_echo"
    assert r["key"] == "%d:run_echo" % tid
    assert r["correlation"] == done["correlation_id"], done
    # taskerd's own settings are not the program's business.
    assert r["internal"] == []


def test_exit_75_is_retried_and_stderr_explains(taskerd, tmp_path):
    prog = write_program(str(tmp_path), "flaky.sh", FLAKY)
    t = taskerd(templates={"flaky.yaml": template("flaky", """\
  - name: reserve
    handler: exec
    default_retry_limit: 3
    backoff: { base: 100ms, max: 100ms }
    handler_config: { command: [%s] }
""" % prog)})
    tid = t.create_task("flaky", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete", t.log_tail(40)
    s = step(t, tid, "reserve")
    assert s["attempts"] == 2, s
    assert s["results"] == {"reserved": True}
    # The first attempt's failure is in the audit trail with its reason.
    r = t.get("/v1/tasks/%s/steps/reserve/transitions" % tid)
    assert r.status == 200, r.body
    waits = [x for x in r.body["transitions"]
             if x["to_state"] == "waiting_for_retry"]
    assert len(waits) == 1, r.body
    text = json.dumps(waits[0])
    assert "exec_tempfail" in text and "inventory service busy" in text, waits


def test_failures_and_their_codes(taskerd, tmp_path):
    d = str(tmp_path)
    progs = {
        "permanent": write_program(d, "permanent.sh", "#!/bin/sh\n"
                                   "echo 'card declined' >&2\nexit 3\n"),
        "not_json": write_program(d, "not_json.sh", "#!/bin/sh\n"
                                  "echo 'all good, honestly'\n"
                                  "echo 'printed a banner first' >&2\n"),
        "big_int": write_program(d, "big_int.sh", "#!/bin/sh\n"
                                 "echo '{\"id\": 123456789012345678901}'\n"),
        "crash": write_program(d, "crash.sh", "#!/bin/sh\n"
                               "kill -SEGV $$\n"),
        "nul_out": write_program(d, "nul_out.sh", "#!/bin/sh\n"
                                 "printf '\\0 \\0'\n"),
        "missing": os.path.join(d, "no-such-program"),
        "not_in_path": "taskerd-no-such-program-in-path",
        "no_interpreter": write_program(d, "old.py", "#! /opt/no-python\n"),
        # Saved with Windows line ends: the kernel looks for "/bin/sh\r".
        "crlf": write_program(d, "crlf.sh", "#!/bin/sh\r\necho {}\r\n"),
        # With an argument: the line's \r is the argument's.
        "arg_crlf": write_program(d, "arg_crlf.sh",
                                  "#!/opt/no-sh -e\r\necho {}\r\n"),
        # Exactly the 1024 bytes of stderr kept, in one write: none cut.
        "err_1024": write_program(d, "err_1024.py", "#!/usr/bin/python3\n"
                                  "import os, sys\n"
                                  "os.write(2, b'card declined\\n' + "
                                  "b'0' * 1010)\nsys.exit(3)\n"),
    }
    steps = ""
    for name, prog in progs.items():
        steps += """\
  - name: %s
    handler: exec
    default_retry_limit: 2
    backoff: { base: 100ms, max: 100ms }
    handler_config: { command: [%s, an-argument] }
""" % (name, prog)
    t = taskerd(templates={"fails.yaml": template("fails", steps)})
    tid = t.create_task("fails", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid)
    assert done["status"] == "error", done
    want = {
        # name: (code, attempts, text in the message)
        "permanent": ("exec_failed", 1, "exited with status 3: card declined"),
        # With the end of its stderr, which may say why.
        "not_json": ("bad_output", 1, "stdout is not JSON: "),
        "big_int": ("bad_output", 1, "write integers beyond 64 bits as "
                    "strings"),
        "crash": ("exec_signal", 2, "killed by signal 11"),
        "nul_out": ("bad_output", 1, "stdout is not JSON"),
        "missing": ("exec_failed", 1, "No such file or directory"),
        "not_in_path": ("exec_failed", 1, "not found in PATH"),
        # (execve says ENOENT, as for a missing script.)
        "no_interpreter": ("exec_failed", 1, "old.py: its interpreter "
                           "/opt/no-python is not there"),
        "crlf": ("exec_failed", 1, "crlf.sh: its #! line ends in a "
                 "carriage return (Windows line ends), and no interpreter "
                 "\"/bin/sh\\r\" is there"),
        "arg_crlf": ("exec_failed", 1, "arg_crlf.sh: its interpreter "
                     "/opt/no-sh is not there"),
        "err_1024": ("exec_failed", 1, "exited with status 3: card "
                     "declined"),
    }
    for name, (code, attempts, text) in want.items():
        s = step(t, tid, name)
        assert s["status"] == "error", s
        assert s["last_error"]["code"] == code, s
        assert s["attempts"] == attempts, s
        assert text in s["last_error"]["message"], s
    assert step(t, tid, "not_json")["last_error"]["message"].endswith(
        ": printed a banner first"), step(t, tid, "not_json")
    # A program's failure is the step's, never the worker's.
    assert "worker died" not in t.log()
    # The two that could not run were named when the templates loaded.
    said = [harness.logfmt(l)["reason"]
            for l in t.log_lines("template step cannot run here yet")]
    assert len(said) == 2, said
    assert any('"missing": no program' in l for l in said), said
    assert any("no-such-program-in-path to run in PATH" in l
               for l in said), said


def test_output_after_a_byte_order_mark_is_json(taskerd, tmp_path):
    """Some runtimes write a byte order mark first: the JSON after it is
    the results, as for an http answer (the step failed for good with
    "invalid token near ''", the program's work done)."""
    prog = write_program(str(tmp_path), "bom.py", "#!/usr/bin/python3\n"
                         "import sys\n"
                         "sys.stdout.buffer.write(b'\\xef\\xbb\\xbf"
                         "{\"ok\": true}\\n')\n")
    t = taskerd(templates={"bom.yaml": template("bom", """\
  - name: only
    handler: exec
    handler_config: { command: [%s] }
""" % prog)})
    tid = t.create_task("bom", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete", t.log_tail(20)
    assert step(t, tid, "only")["results"] == {"ok": True}


def test_a_program_that_answers_null_has_empty_results(taskerd):
    """A program that prints null and exits 0 succeeds with results {}, as
    one that prints nothing does, and its dependent reads {} for it.  The
    null went to the supervisor as no results at all: the step showed
    results null."""
    t = taskerd(templates={"nil.yaml": template("nil", """\
  - name: only
    handler: exec
    handler_config: { command: [/bin/sh, -c, "echo null"] }
  - name: after
    handler: exec
    depends_on_step: only
    handler_config:
      command: [/usr/bin/python3, -c, "import json, sys; print(json.dumps(
        {'seen': json.load(sys.stdin)['steps']['only']['results']}))"]
""")})
    tid = t.create_task("nil", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete", t.log_tail(20)
    assert step(t, tid, "only")["results"] == {}
    assert step(t, tid, "after")["results"] == {"seen": {}}


def test_program_is_looked_for_in_the_steps_own_path(taskerd, tmp_path):
    """A step whose env sets PATH runs its program from that PATH (it was
    looked for in the worker's, and not found)."""
    tools = str(tmp_path / "tools")
    write_program(tools, "mytool", "#!/bin/sh\necho '{\"ran\": true}'\n")
    steps = ""
    for name, path in (("found", tools + ":/usr/bin:/bin"),
                       ("lost", "/nonexistent")):
        steps += """\
  - name: %s
    handler: exec
    handler_config: { command: [mytool], env: { PATH: "%s" } }
""" % (name, path)
    t = taskerd(templates={"tools.yaml": template("tools", steps)})
    tid = t.create_task("tools", {}, namespace=NS)["task_id"]
    t.wait_task(tid)
    assert step(t, tid, "found")["results"] == {"ran": True}, \
        step(t, tid, "found")
    lost = step(t, tid, "lost")
    assert lost["last_error"]["message"] == "cannot run mytool: not found " \
        "in the step's env PATH", lost
    said = [harness.logfmt(l)["reason"]
            for l in t.log_lines("template step cannot run here yet")]
    assert len(said) == 1 and '"lost": no program mytool to run in the ' \
        "step's env PATH" in said[0], said


def test_output_larger_than_a_frame(taskerd, tmp_path):
    prog = write_program(str(tmp_path), "big.py", "#!/usr/bin/python3\n"
                         "import json, sys\n"
                         "json.dump({'pad': 'y' * 200000}, sys.stdout)\n")
    t = taskerd(templates={"big.yaml": template("big", """\
  - name: big
    handler: exec
    default_retry_limit: 3
    handler_config: { command: [%s] }
""" % prog)}, config={"workers.max_frame": "64KiB"})
    tid = t.create_task("big", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "error"
    s = step(t, tid, "big")
    assert s["last_error"]["code"] == "results_too_large", s
    assert s["attempts"] == 1, s


@pytest.fixture
def started():
    """Pids of programs a test started.  What is left of them at the end
    (the test failed, or left them on purpose) is killed: the process
    group each leads, or the process alone (a wrapper's helper leads
    none)."""
    pids = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def read_pids(path, started):
    def ready():
        try:
            with open(path) as f:
                pids = f.read().split()
        except FileNotFoundError:
            return None
        return [int(p) for p in pids] if len(pids) == 2 else None
    pids = harness.wait_until(ready, 15, message="the program's pids")
    started.append(pids[0])
    return pids


# Starts a child of its own (in a session of its own when told "away"),
# writes both pids, then waits for ever (or exits at once with results when
# told to).  Told "deep", the child is a copy of itself in a session of its
# own, with an "away" child: the pid written is that grandchild's.
SPAWNER = r"""#!/bin/sh
if [ "$2" = deep ]; then
    PIDS="$PIDS.copy" setsid "$0" wait away &
    while [ ! -e "$PIDS.copy" ]; do sleep 0.01; done
    echo $$ $(cut -d' ' -f2 "$PIDS.copy") > "$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"
    sleep 300
    exit 0
elif [ "$2" = away ]; then
    setsid sleep 300 &
    # On once it has left this session (field 6 of stat).
    while [ "$(cut -d' ' -f6 /proc/$!/stat)" = \
            "$(cut -d' ' -f6 /proc/$$/stat)" ]; do
        sleep 0.01
    done
else
    sleep 300 &
fi
echo $$ $! > "$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"
if [ "$1" = exit ]; then
    echo '{"left": "a child behind"}'
    exit 0
fi
sleep 300
"""


def spawner_template(name, prog, pids, mode, timeout, child="near"):
    return template(name, """\
  - name: spawn
    handler: exec
    default_retry_limit: 1
    timeout: %s
    handler_config:
      command: [%s, %s, %s]
      env: { PIDS: %s }
""" % (timeout, prog, mode, child, pids))


def worker_children(t):
    """Pids the workers have as children (reaped zombies are gone)."""
    kids = []
    for w in t.workers_pids():
        try:
            with open("/proc/%d/task/%d/children" % (w, w)) as f:
                kids += [int(p) for p in f.read().split()]
        except FileNotFoundError:
            pass
    return kids


def test_program_and_its_children_end_with_the_step(taskerd, tmp_path,
                                                   started):
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={
        "leave.yaml": spawner_template("leave", prog, d + "/a", "exit", "30s"),
        "hang.yaml": spawner_template("hang", prog, d + "/b", "wait", "2s"),
    })

    # It exits leaving a child that holds its stdout: the step does not
    # wait for that child, and the child is stopped.
    tid = t.create_task("leave", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid, timeout=10)
    assert done["status"] == "complete", done
    assert step(t, tid, "spawn")["results"] == {"left": "a child behind"}
    for pid in read_pids(d + "/a", started):
        harness.wait_until(lambda: not harness.proc_alive(pid), 5,
                           message="pid %d gone" % pid)

    # It runs past the step's timeout: the worker is stopped, and the
    # program and its child with it.
    tid = t.create_task("hang", {}, namespace=NS)["task_id"]
    pids = read_pids(d + "/b", started)
    done = t.wait_task(tid, timeout=20)
    assert done["status"] == "error", done
    assert step(t, tid, "spawn")["last_error"]["code"] == "timeout"
    for pid in pids:
        harness.wait_until(lambda: not harness.proc_alive(pid), 5,
                           message="pid %d gone" % pid)


@pytest.mark.parametrize("mode", ["exit", "wait"])
def test_children_that_leave_the_group_end_too(taskerd, tmp_path, started,
                                               mode):
    """A child the program moves out of its process group (setsid, here)
    ends with the step all the same: when the program exits, and when the
    step's deadline stops the worker.  Nothing is left as a zombie."""
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={"away.yaml": spawner_template(
        "away", prog, d + "/p", mode, "2s", child="away")})
    tid = t.create_task("away", {}, namespace=NS)["task_id"]
    program, child = read_pids(d + "/p", started)
    started.append(child)
    if mode == "wait":      # (an exiting program's is gone at once)
        assert os.getsid(child) != os.getsid(program), \
            "the child did not leave the program's session"
    done = t.wait_task(tid, timeout=20)
    assert done["status"] == ("complete" if mode == "exit" else "error"), done
    harness.wait_until(lambda: not harness.proc_alive(child), 5,
                       message="the child that left the group gone")
    assert not harness.proc_alive(program)
    harness.wait_until(lambda: worker_children(t) == [], 5,
                       message="no child left under the workers")


@pytest.mark.parametrize("child", ["near", "away"])
def test_program_dies_with_a_killed_worker(taskerd, tmp_path, started,
                                           child):
    """A worker killed outright (SIGKILL: the OOM killer, say) cannot stop
    its program's group itself.  The program dies with it, and what the
    program started, in its group or not, is orphaned to the supervisor
    (a child subreaper), which kills it."""
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={"hang.yaml": spawner_template(
        "hang", prog, d + "/c", "wait", "60s", child=child)})
    t.create_task("hang", {}, namespace=NS)
    program, orphan = read_pids(d + "/c", started)
    started.append(orphan)
    worker = harness.proc_ppid(program)
    assert worker in t.workers_pids(), (worker, t.workers_pids())
    os.kill(worker, signal.SIGKILL)
    harness.wait_until(lambda: not harness.proc_alive(program), 5,
                       message="the program gone with its worker")
    harness.wait_until(lambda: not harness.proc_alive(orphan), 10,
                       message="what the program started gone too")
    # (The program itself may still be there for the first sweep: then
    # it is the one named, and its group goes with it.)
    assert t.log_lines(r'msg="killing a process orphaned to taskerd" '
                       r'pid=\d+ comm=(sleep|spawner.sh)'), t.log_tail(20)
    assert t.running


def test_orphans_of_orphans_are_swept_too(taskerd, tmp_path, started):
    """Killing a stray orphans what it started in groups of its own: the
    sweep after a worker's death comes back for those (10 ms later, not
    at the next ping tick, a minute away here)."""
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={"hang.yaml": spawner_template(
        "hang", prog, d + "/g", "wait", "60s", child="deep")},
        config={"workers.ping_interval": "60s",
                "workers.ping_timeout": "120s"})
    t.create_task("hang", {}, namespace=NS)
    program, grandchild = read_pids(d + "/g", started)
    started.append(grandchild)
    copy = harness.proc_ppid(grandchild)
    started.append(copy)
    assert harness.proc_ppid(copy) == program
    assert len({os.getsid(program), os.getsid(copy),
                os.getsid(grandchild)}) == 3
    os.kill(harness.proc_ppid(program), signal.SIGKILL)    # the worker
    for pid in (program, copy, grandchild):
        harness.wait_until(lambda: not harness.proc_alive(pid), 5,
                           message="pid %d gone" % pid)
    assert t.running


def test_children_taskerd_started_with_are_left_alone(taskerd, started):
    """A process taskerd already had as a child when it started (a
    wrapper's `helper & exec taskerd`) is no stray: the sweeps after a
    worker's death leave it running."""
    t = taskerd(templates={}, start=False)
    t.launcher = ["/bin/sh", "-c", 'sleep 300 & exec "$0" "$@"']
    t.start()
    helper = [k for k in harness.proc_children(t.pid)
              if harness.proc_cmdline(k)[:1] == ["sleep"]]
    assert len(helper) == 1, helper
    started.append(helper[0])
    worker = t.workers_pids()[0]
    os.kill(worker, signal.SIGKILL)
    harness.wait_until(lambda: t.log_lines(r'msg="worker died" pid=%d'
                                           % worker), 10,
                       message="the worker's death noticed")
    time.sleep(0.5)         # past the sweep that follows a death
    assert harness.proc_alive(helper[0])
    assert not t.log_lines("killing a process orphaned"), t.log_tail(20)


def test_many_children_taskerd_started_with(taskerd, tmp_path, started):
    """A wrapper started taskerd with 600 helpers: none of them is taken
    for a stray, and the orphan a killed worker's program leaves, listed
    after all of them, is killed all the same.  Only the first 64 were
    known as taskerd's own (the others were killed as strays), and only
    the first 512 children were looked at (an orphan listed after them
    was never killed)."""
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={"hang.yaml": spawner_template(
        "hang", prog, d + "/m", "wait", "60s")}, start=False)
    t.launcher = ["/bin/sh", "-c", 'i=0; while [ $i -lt 600 ]; do '
                  'sleep 300 & i=$((i + 1)); done; exec "$0" "$@"']
    t.start()
    helpers = [k for k in harness.proc_children(t.pid)
               if harness.proc_cmdline(k)[:1] == ["sleep"]]
    started.extend(helpers)
    assert len(helpers) == 600, len(helpers)
    t.create_task("hang", {}, namespace=NS)
    program, orphan = read_pids(d + "/m", started)
    started.append(orphan)
    os.kill(harness.proc_ppid(program), signal.SIGKILL)    # the worker
    harness.wait_until(lambda: not harness.proc_alive(orphan), 10,
                       message="the killed worker's orphan gone")
    assert all(harness.proc_alive(h) for h in helpers), \
        t.log_lines("killing a process orphaned")[:3]


def test_program_being_replaced_is_retried(taskerd, tmp_path):
    """A program that cannot be run for now (open for writing: a deploy
    replacing it, ETXTBSY) fails the attempt, not the step."""
    prog = write_program(str(tmp_path), "deploying.sh",
                         "#!/bin/sh\necho '{\"ok\": true}'\n")
    t = taskerd(templates={"deploy.yaml": template("deploy", """\
  - name: run
    handler: exec
    default_retry_limit: 3
    backoff: { base: 1s, max: 1s, jitter: none }
    handler_config: { command: [%s] }
""" % prog)})
    writer = open(prog, "a")
    try:
        tid = t.create_task("deploy", {}, namespace=NS)["task_id"]
        harness.wait_until(
            lambda: step(t, tid, "run")["status"] == "waiting_for_retry",
            10, message="the first attempt failed")
        s = step(t, tid, "run")
        assert s["last_error"]["code"] == "exec_failed", s
        assert "Text file busy" in s["last_error"]["message"], s
    finally:
        writer.close()
    assert t.wait_task(tid)["status"] == "complete"
    s = step(t, tid, "run")
    # Retried, not failed for good (a slow poll may cost one more try).
    assert s["attempts"] >= 2 and s["results"] == {"ok": True}, s


def test_program_and_children_end_when_the_supervisor_dies(taskerd, tmp_path,
                                                           started):
    """taskerd killed outright: its workers see their socket close, and
    each stops its program's whole group before it leaves."""
    d = str(tmp_path)
    prog = write_program(d, "spawner.sh", SPAWNER)
    t = taskerd(templates={
        "hang.yaml": spawner_template("hang", prog, d + "/e", "wait", "60s")})
    t.create_task("hang", {}, namespace=NS)
    pids = read_pids(d + "/e", started)
    t.kill()
    for pid in pids:
        harness.wait_until(lambda: not harness.proc_alive(pid), 10,
                           message="pid %d gone" % pid)


# A child in a session of its own whose main thread ends while another
# thread runs on: /proc shows it as "Z", yet it lives.
THREADED = r"""#!/bin/sh
setsid python3 -c '
import ctypes, os, sys, threading, time
threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d %d" % (os.getppid(), os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
ctypes.CDLL(None).pthread_exit(None)
' "$PIDS" &
sleep 300
"""


def test_stray_whose_main_thread_ended_is_killed(taskerd, tmp_path, started):
    """Such a stray is no zombie to reap: it is killed like any other
    (it used to be left running, and swept for every 10 ms)."""
    d = str(tmp_path)
    prog = write_program(d, "threaded.sh", THREADED)
    t = taskerd(templates={"mt.yaml": template("mt", """\
  - name: spawn
    handler: exec
    default_retry_limit: 1
    timeout: 60s
    handler_config:
      command: [%s]
      env: { PIDS: %s }
""" % (prog, d + "/p"))})
    t.create_task("mt", {}, namespace=NS)
    program, stray = read_pids(d + "/p", started)
    started.append(stray)
    harness.wait_until(lambda: harness.proc_state(stray) == "Z", 10,
                       message="the stray's main thread gone")
    os.kill(harness.proc_ppid(program), signal.SIGKILL)     # the worker
    harness.wait_until(lambda: not os.path.exists("/proc/%d" % stray), 10,
                       message="the stray killed and reaped")
    assert t.log_lines(r'msg="killing a process orphaned to taskerd" '
                       r'pid=%d ' % stray), t.log_tail(20)


SEEN = r"""#!/usr/bin/python3
import json, sys
json.dump({"seen": sorted(json.load(sys.stdin)["steps"])}, sys.stdout)
"""


def test_program_gets_only_the_results_of_the_steps_it_depends_on(taskerd):
    """c depends on a only, e on c: each gets the results of the steps it
    depends on, directly or not, and never those of b and d, another
    branch that finished first (big ones would count against its input,
    and a program reading them would work only as long as the timing
    holds)."""
    t = taskerd(templates={"seen.yaml": template("seen", """\
  - name: a
    handler: noop
    handler_config: { sleep_ms: 500, results: { n: 1 } }
  - name: b
    handler: noop
    handler_config: { results: { big: "%s" } }
  - name: d
    handler: noop
    depends_on_step: b
  - name: c
    handler: exec
    depends_on_step: a
    handler_config: { command: [./seen.py] }
  - name: e
    handler: exec
    depends_on_step: c
    handler_config: { command: [./seen.py] }
""" % ("x" * 200000))}, start=False)
    write_program(t.config["templates"]["dir"], "seen.py", SEEN)
    t.start()
    tid = t.create_task("seen", {}, namespace=NS)["task_id"]
    done = t.wait_task(tid)
    assert done["status"] == "complete", t.log_tail(40)
    assert step(t, tid, "c")["results"] == {"seen": ["a"]}
    assert step(t, tid, "e")["results"] == {"seen": ["a", "c"]}
    order = {s["name"]: s["completed_at"] for s in done["steps"]}
    assert order["d"] < order["c"], order


def test_workers_that_run_as_root_are_warned_about(taskerd):
    """Started as root without workers.user, the workers (and every exec
    program and plugin) run as root: the log says so, once, at start."""
    t = taskerd(templates={"noop.yaml": """\
name: idle
namespace_name: exec
version: 1.0.0
step_templates:
  - name: only
    handler: noop
"""})
    lines = t.log_lines("workers run as root")
    if os.geteuid() == 0:
        assert len(lines) == 1 and "level=warn" in lines[0], t.log_tail(20)
        assert "workers.user" in lines[0], lines
    else:
        assert lines == [], lines
