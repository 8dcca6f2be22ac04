"""The plugin handler: a step run by a C function in a shared object
(include/taskerd_plugin.h).

The object is built here from the installed header's source, as a plugin
author would; a worker loads it once and calls the function with the step
input, the config and the step's identity.  Its return value is the
outcome: 0 success with JSON results, 75 retryable, anything else
permanent; a plugin that crashes costs its worker, never taskerd.
"""

import os
import re
import signal
import subprocess
import time

import pytest

import harness

NS = "plugin"

SOURCE = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "taskerd_plugin.h"

static int calls;	/* a plugin's state lives as long as its worker */

int
greet(struct taskerd_step *s)
{
	if (s->api != TASKERD_PLUGIN_API)
		return 1;
	calls++;
	if (asprintf(&s->results, "{\"input\": %s, \"config\": %s, "
	    "\"task_id\": %lld, \"step\": \"%s\", \"attempt\": %u, "
	    "\"key\": \"%s\", \"correlation\": \"%s\", \"calls\": %d}",
	    s->input, s->config, s->task_id, s->step_name, s->attempt,
	    s->idempotency_key, s->correlation_id, calls) == -1)
		return 1;
	return TASKERD_STEP_OK;
}

int
flaky(struct taskerd_step *s)
{
	if (s->attempt == 1) {
		s->error = strdup("warehouse busy");
		return TASKERD_STEP_RETRY;
	}
	s->results = strdup("{\"reserved\": true}");
	return TASKERD_STEP_OK;
}

int
refuse(struct taskerd_step *s)
{
	s->error = strdup("card declined");
	return 3;
}

int
long_error(struct taskerd_step *s)
{
	if ((s->error = malloc(100001)) == NULL)
		return 1;
	memset(s->error, 'e', 100000);
	s->error[100000] = '\0';
	return 2;
}

int
garbled(struct taskerd_step *s)
{
	s->results = strdup("{oops");
	return TASKERD_STEP_OK;
}

static void *
leave(void *arg)
{
	(void)arg;
	usleep(300000);
	_exit(0);
}

/* Answers, then its worker dies 300 ms later: its last words. */
int
last_words(struct taskerd_step *s)
{
	pthread_t	t;
	FILE		*f;
	char		*pad;

	if ((f = fopen(MARKER, "w")) != NULL)
		fclose(f);
	sleep(1);
	if ((pad = malloc(60001)) == NULL)
		return 1;
	memset(pad, 'z', 60000);
	pad[60000] = '\0';
	if (asprintf(&s->results, "{\"pad\": \"%s\"}", pad) == -1)
		return 1;
	free(pad);
	if (pthread_create(&t, NULL, leave, NULL) != 0)
		return 1;
	return TASKERD_STEP_OK;
}

int
crash(struct taskerd_step *s)
{
	(void)s;
	raise(SIGSEGV);
	return TASKERD_STEP_OK;
}

int
quit2(struct taskerd_step *s)
{
	(void)s;
	exit(2);
}

/* Writes what is no frame on its worker's socket to the supervisor. */
int
babble(struct taskerd_step *s)
{
	static const char	 junk[] = "\xff\xff\xff\xffjunk";
	struct stat		 st;
	int			 fd;

	(void)s;
	for (fd = 3; fd < 64; fd++)
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    write(fd, junk, sizeof(junk) - 1) < 0)
			return 1;
	sleep(5);
	return TASKERD_STEP_OK;
}
"""


@pytest.fixture
def plugin(tmp_path):
    """The shared object, built with the system's C compiler."""
    src = tmp_path / "steps.c"
    src.write_text(SOURCE)
    lib = tmp_path / "libsteps.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-pthread", "-Wall",
                        "-Werror", "-DMARKER=\"%s/marker\"" % tmp_path,
                        "-I", str(harness.REPO / "include"),
                        "-o", str(lib), str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return str(lib)


def template(name, steps):
    return ("name: %s\nnamespace_name: %s\nversion: 1.0.0\nstep_templates:\n"
            % (name, NS)) + steps


def steps_by_name(t, task_id):
    return {s["name"]: s for s in t.task(task_id)["steps"]}


def test_function_gets_the_step_and_answers_results(taskerd, plugin):
    # handler_class names the function, as a ported Tasker template does.
    t = taskerd(templates={"greet.yaml": template("greet", """\
  - name: first
    handler_class: greet
    handler_config: { library: %s, greeting: hello }
  - name: second
    handler_class: greet
    depends_on_step: first
    handler_config: { library: %s }
""" % (plugin, plugin))}, workers=1)
    tid = t.create_task("greet", {"email": "ann@example.com"},
                        namespace=NS)["task_id"]
    done = t.wait_task(tid)
    assert done["status"] == "complete", t.log_tail(40)
    steps = steps_by_name(t, tid)
    r = steps["first"]["results"]
    assert r["input"]["context"] == {"email": "ann@example.com"}
    assert r["input"]["attempt"] == 1
    assert r["config"] == {"library": plugin, "symbol": "greet",
                           "greeting": "hello"}
    assert r["task_id"] == tid and r["step"] == "first"
    assert r["attempt"] == 1
    assert r["key"] == "%d:first" % tid
    assert r["correlation"] == done["correlation_id"]
    # The second step reads the first's results, and runs in the same
    # (only) worker, where the object stayed loaded with its state.
    r2 = steps["second"]["results"]
    assert r2["input"]["steps"]["first"]["results"]["step"] == "first"
    assert r2["calls"] == r["calls"] + 1


def test_outcomes_and_their_codes(taskerd, plugin, tmp_path):
    steps = ""
    for name, symbol in (("flaky", "flaky"), ("refuse", "refuse"),
                         ("long_error", "long_error"),
                         ("garbled", "garbled"), ("crash", "crash"),
                         ("babble", "babble"), ("quit2", "quit2"),
                         ("no_function", "nosuch")):
        steps += """\
  - name: %s
    handler: plugin
    default_retry_limit: 2
    backoff: { base: 100ms, max: 100ms }
    handler_config: { library: %s, symbol: %s }
""" % (name, plugin, symbol)
    steps += """\
  - name: no_library
    handler: plugin
    handler_config: { library: %s, symbol: greet }
""" % (tmp_path / "libnone.so")
    t = taskerd(templates={"outcomes.yaml": template("outcomes", steps)})
    t.crash_reports = True      # "crash" segfaults: a sanitizer says so
    tid = t.create_task("outcomes", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "error"
    steps = steps_by_name(t, tid)
    flaky = steps["flaky"]
    assert (flaky["status"], flaky["attempts"]) == ("complete", 2), flaky
    assert flaky["results"] == {"reserved": True}
    want = {
        # name: (code, attempts, text in the message)
        "refuse": ("plugin_failed", 1, "refuse returned 3: card declined"),
        # Kept to its first kilobyte, as exec's stderr.
        "long_error": ("plugin_failed", 1, "long_error returned 2: eeee"),
        "garbled": ("bad_output", 1, "results that are not JSON"),
        # A crash is the worker's death: retried, as for any handler; the
        # message says how it died (a sanitizer makes it exit 1).
        "crash": ("worker_died", 2, "died ("),
        "babble": ("worker_died", 2, "stopped: protocol error: "),
        "quit2": ("worker_died", 2, "died (exit status 2)"),
        "no_function": ("plugin_not_loaded", 1, "has no function nosuch"),
        "no_library": ("plugin_not_loaded", 1, "cannot load"),
    }
    for name, (code, attempts, text) in want.items():
        s = steps[name]
        assert s["status"] == "error", s
        assert s["last_error"]["code"] == code, s
        assert s["attempts"] == attempts, s
        assert text in s["last_error"]["message"], s
    assert len(steps["long_error"]["last_error"]["message"]) < 1100
    assert re.search(r"died \((SIGSEGV|exit status 1)\)$",
                     steps["crash"]["last_error"]["message"]), steps["crash"]
    # The supervisor lived through its workers' crashes and replaced them,
    # at once: an exit 2 mid-step is no failed start.
    assert t.running
    assert not t.log_lines("worker cannot start"), t.log_lines("cannot")
    harness.wait_until(lambda: len(t.workers_pids()) == 2, 10,
                       message="the pool back to two workers")


def test_step_without_a_library_is_refused_at_load(tmp_path):
    tdir = tmp_path / "templates"
    tdir.mkdir()
    (tdir / "ported.yaml").write_text(template("ported", """\
  - name: reserve
    handler_class: Shop::StepHandler::Reserve
"""))
    cfg = tmp_path / "taskerd.yaml"
    cfg.write_text("templates:\n  dir: %s\n" % tdir)
    r = harness.run_cli(["-c", str(cfg), "--check"])
    assert r.returncode != 0, r.stdout + r.stderr
    assert "ported.yaml:5: step \"reserve\": a plugin step needs " \
        "handler_config.library" in r.stdout + r.stderr, r.stdout + r.stderr


def test_outcome_written_just_before_the_worker_died_counts(taskerd, plugin,
                                                            tmp_path):
    """The worker answers, then dies before the supervisor has read all of
    the answer: the outcome still counts, and the step is not run again.

    The supervisor is stopped (SIGSTOP) while the worker writes and dies,
    so that on SIGCONT it has both the socket to read and SIGCHLD to
    handle; it reads a socket a few kilobytes at a time."""
    t = taskerd(templates={"last.yaml": template("last", """\
  - name: last
    handler: plugin
    default_retry_limit: 3
    handler_config: { library: %s, symbol: last_words }
""" % plugin)})
    tid = t.create_task("last", {}, namespace=NS)["task_id"]
    marker = tmp_path / "marker"
    harness.wait_until(marker.exists, 15, message="the step running")
    os.kill(t.pid, signal.SIGSTOP)
    try:
        time.sleep(2)           # the answer (1 s) and the death (+0.3 s)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    done = t.wait_task(tid)
    s = steps_by_name(t, tid)["last"]
    assert done["status"] == "complete", (s, t.log_tail(40))
    assert s["attempts"] == 1, s
    assert len(s["results"]["pad"]) == 60000


VERSIONED = r"""
#include <unistd.h>
#include <string.h>
#include "taskerd_plugin.h"

int
which(struct taskerd_step *s)
{
	s->results = strdup("{\"v\": " VERSION "}");
	return TASKERD_STEP_OK;
}

/* Runs until the file GATE exists (20 s at most). */
int
slow(struct taskerd_step *s)
{
	int	i;

	for (i = 0; i < 1000 && access(GATE, F_OK) != 0; i++)
		usleep(20000);
	s->results = strdup("{\"slow\": " VERSION "}");
	return TASKERD_STEP_OK;
}
"""


def build_versioned(tmp_path, version, dest):
    """The library at dest, as a deployment puts it: built aside, renamed
    into place.  Its slow step ends once tmp_path/gate exists."""
    src = tmp_path / "v.c"
    src.write_text(VERSIONED)
    aside = str(dest) + ".new"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror",
                        "-DVERSION=\"%d\"" % version,
                        "-DGATE=\"%s\"" % (tmp_path / "gate"),
                        "-I", str(harness.REPO / "include"),
                        "-o", aside, str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    os.rename(aside, dest)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_replaces_the_workers_and_their_plugins(taskerd, tmp_path,
                                                         workers):
    """A new version of a plugin installed at the same path is taken up
    at the next SIGHUP: every worker is replaced, one at a time and each
    once its step is done (a worker keeps what it loaded; the old version
    ran until a restart).  The node stays ready throughout, with one
    worker too."""
    lib = tmp_path / "libv.so"
    build_versioned(tmp_path, 1, lib)
    t = taskerd(templates={"v.yaml": template("v", """\
  - name: which
    handler: plugin
    handler_config: { library: %s, symbol: which }
""" % lib), "s.yaml": template("s", """\
  - name: slow
    handler: plugin
    handler_config: { library: %s, symbol: slow }
""" % lib)}, workers=workers)

    def which():
        tid = t.create_task("v", {}, namespace=NS)["task_id"]
        assert t.wait_task(tid)["status"] == "complete"
        return steps_by_name(t, tid)["which"]["results"]["v"]
    assert [which() for _ in range(4)] == [1, 1, 1, 1]
    slow = t.create_task("s", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: steps_by_name(t, slow)["slow"]["status"] ==
                       "in_progress", 10, message="the slow step running")
    build_versioned(tmp_path, 2, lib)
    ready = []

    def sampling(cond):
        def f():
            ready.append(t.get("/health/ready").status)
            return cond()
        return f
    try:
        os.kill(t.pid, signal.SIGHUP)
        # The slow step runs on until the reload is heard and the idle
        # workers (if any) are replaced.
        harness.wait_until(sampling(lambda: t.log_lines(
            'msg="templates (unchanged|reloaded)"')), 10, interval=0.02,
            message="the reload heard")
        harness.wait_until(sampling(lambda: len(t.log_lines(
            'msg="worker replaced after a reload"')) >= workers - 1), 10,
            interval=0.02, message="the idle workers replaced")
    finally:
        (tmp_path / "gate").touch()
    while t.task(slow)["status"] != "complete":
        ready.append(t.get("/health/ready").status)
        time.sleep(0.02)
    # The busy worker finished its step with the version it had.
    s = steps_by_name(t, slow)["slow"]
    assert (s["results"], s["attempts"]) == ({"slow": 1}, 1), s
    harness.wait_until(lambda: len(t.log_lines(
        'msg="worker replaced after a reload"')) == workers, 10,
        message="every worker replaced")
    assert set(ready) == {200}, ready
    assert [which() for _ in range(4)] == [2, 2, 2, 2]
    assert not t.log_lines("worker died"), t.log_lines("worker died")


DEAF = r"""
#include <signal.h>
#include "taskerd_plugin.h"

int
deaf(struct taskerd_step *s)
{
	signal(SIGTERM, SIG_IGN);
	return TASKERD_STEP_OK;
}
"""


def test_a_replaced_worker_that_will_not_stop_is_said(taskerd, tmp_path):
    """A worker a reload replaces is told to stop; one whose plugin ignores
    SIGTERM is killed after the grace, and the log says so rather than
    that it was replaced as planned."""
    src = tmp_path / "deaf.c"
    src.write_text(DEAF)
    lib = tmp_path / "libdeaf.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror",
                        "-I", str(harness.REPO / "include"),
                        "-o", str(lib), str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    t = taskerd(templates={"d.yaml": template("d", """\
  - name: only
    handler: plugin
    handler_config: { library: %s, symbol: deaf }
""" % lib)}, workers=1)
    tid = t.create_task("d", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    os.kill(t.pid, signal.SIGHUP)
    said = harness.wait_until(lambda: t.log_lines(
        "worker replaced after a reload"), 15, message="the replacement")
    assert len(said) == 1 and harness.logfmt(said[0])["level"] == "warn" \
        and 'died on its way out' in said[0] and \
        harness.logfmt(said[0])["signal"] == "SIGKILL", said
    harness.wait_until(lambda: t.get("/health/ready").status == 200, 10,
                       message="ready with the new worker")
    tid = t.create_task("d", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"


def test_a_reload_keeps_workers_when_their_replacement_cannot_start(
        taskerd, tmp_path):
    """A replacement that does not start (the worker binary changed under
    taskerd and fails, say) stops the replacing: the workers not yet
    replaced are kept and go on running steps, instead of being traded one
    by one for ones that cannot start."""
    flag = tmp_path / "broken"
    wrapper = tmp_path / "worker.sh"
    wrapper.write_text("#!/bin/sh\n[ -e %s ] && exit 3\nexec %s \"$@\"\n"
                       % (flag, harness.worker_bin()))
    wrapper.chmod(0o755)
    t = taskerd(templates={"g.yaml": template("g", """\
  - name: only
    handler: noop
""")}, workers=3, config={"workers.path": str(wrapper)})
    flag.write_text("")
    os.kill(t.pid, signal.SIGHUP)
    harness.wait_until(lambda: t.log_lines("did not start; the others are "
                                           "kept"), 15,
                       message="the replacing stopped")
    assert len(t.log_lines('msg="worker replaced after a reload"')) == 1
    tid = t.create_task("g", {}, namespace=NS)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    assert t.get("/health/ready").status == 200
