"""GET /metrics: valid Prometheus text, and counters that move as tasks run
and workers die."""

import math
import os
import re
import signal

import harness

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'(%s)="((?:[^"\\]|\\.)*)"(,|$)' % r"[a-zA-Z_][a-zA-Z0-9_]*")


def parse(text):
    """A strict reader of the text exposition format: every line is a HELP,
    a TYPE or a sample of a declared family; histograms are cumulative and
    end in +Inf == _count.  Returns {(name, frozenset(labels)): value}."""
    types, samples = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, "TYPE twice: " + name
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels = m.group(1), {}
        if m.group(3):
            rest = m.group(3)
            while rest:
                lm = LABEL.match(rest)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                rest = rest[lm.end():]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, "undeclared: " + line
        value = float(m.group(4))
        assert not math.isnan(value)
        key = (name, frozenset(labels.items()))
        assert key not in samples, "duplicate sample: " + line
        samples[key] = value
    for (name, labels), count in samples.items():
        if not name.endswith("_count") or types.get(name[:-6]) != "histogram":
            continue
        base = dict(labels)
        buckets = sorted(
            (float(dict(l)["le"]), v) for (n, l), v in samples.items()
            if n == name[:-6] + "_bucket"
            and {k: x for k, x in l if k != "le"} == base)
        values = [v for _, v in buckets]
        assert values == sorted(values), "buckets not cumulative: " + name
        assert buckets[-1][0] == math.inf and buckets[-1][1] == count
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


SLOW = """
name: metered
step_templates:
  - name: first
    handler: noop
  - name: slow
    handler: noop
    depends_on_step: first
    retry_limit: 2
    handler_config: { sleep_ms: 1500 }
"""


def scrape(t):
    r = t.get("/metrics")
    assert r.status == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain")
    return parse(r.body if isinstance(r.body, str) else r.body.decode())


def test_metrics_parse_and_move(taskerd):
    t = taskerd(templates={"metered.yaml": SLOW}, workers=2)
    before = scrape(t)
    assert value(before, "taskerd_steps_started_total", namespace="default",
                 template="metered", step="first") == 0

    task = t.create_task("metered", {})
    tid = task["task_id"]

    # Kill the worker running the slow step: one death by SIGKILL, one
    # restart, and the step is retried.
    def busy_on_slow():
        for w in t.workers():
            if w.get("step") == "slow" and w.get("pid"):
                return w["pid"]
        return None
    pid = harness.wait_until(busy_on_slow, 15, message="slow step running")
    assert harness.proc_ppid(pid) == t.pid
    os.kill(pid, signal.SIGKILL)
    done = t.wait_task(tid, timeout=30)
    assert done["status"] == "complete"

    after = scrape(t)
    assert value(after, "taskerd_steps_started_total",
                 namespace="default", template="metered", step="first") == 1
    assert value(after, "taskerd_steps_started_total",
                 namespace="default", template="metered", step="slow") == 2
    assert value(after, "taskerd_steps_completed_total",
                 namespace="default", template="metered", step="slow") == 1
    assert value(after, "taskerd_steps_retried_total",
                 namespace="default", template="metered", step="slow") == 1
    assert value(after, "taskerd_step_duration_seconds_count",
                 namespace="default", template="metered", step="slow") == 2
    assert value(after, "taskerd_worker_deaths_total", reason="SIGKILL") == 1
    assert value(after, "taskerd_worker_restarts_total") >= 1
    assert value(after, "taskerd_tasks", state="complete") == 1
    # A state no task is in reads 0; its series does not vanish.
    for state in ("pending", "in_progress", "error", "cancelled",
                  "resolved_manually"):
        key = ("taskerd_tasks", frozenset({("state", state)}))
        assert after.get(key) == 0.0, (state, sorted(
            k for k in after if k[0] == "taskerd_tasks"))
    assert value(after, "taskerd_workers_up") == 2
    # The API counts itself: the task was created once with 201.
    assert value(after, "taskerd_api_requests_total",
                 route="/v1/tasks", status="201") == 1
    assert value(after, "taskerd_api_requests_total",
                 route="/v1/tasks/{id}", status="200") >= 1
    assert value(after, "taskerd_db_roundtrip_seconds_count") > \
        value(before, "taskerd_db_roundtrip_seconds_count")


def test_step_metrics_keep_namespaces_apart(taskerd):
    """Templates of one name in two namespaces count apart: the step
    metrics carry the namespace (they were labelled by name alone, and
    the two counted as one)."""
    t = taskerd(templates={
        "a.yaml": "name: hello\nnamespace_name: a\n" + SLOW.split(
            "name: metered\n", 1)[1],
        "b.yaml": "name: hello\nnamespace_name: b\n" + SLOW.split(
            "name: metered\n", 1)[1]})
    for ns, n in (("a", 2), ("b", 1)):
        for _ in range(n):
            tid = t.create_task("hello", {}, namespace=ns)["task_id"]
            assert t.wait_task(tid, timeout=30)["status"] == "complete"
    got = scrape(t)
    for ns, n in (("a", 2), ("b", 1)):
        assert value(got, "taskerd_steps_completed_total", namespace=ns,
                     template="hello", step="first") == n, got


def test_a_failure_in_a_cancelled_task_is_no_retry(taskerd):
    """A step fails (retryably) after its task was cancelled: it is
    written cancelled, not waiting for a retry, and the retry counter
    does not move (it counted what the worker said, not what was
    written)."""
    t = taskerd(templates={"doomed.yaml": """
name: doomed
step_templates:
  - name: fails
    handler: noop
    handler_config: { sleep_ms: 1500, fail: retryable }
"""})
    tid = t.create_task("doomed", {})["task_id"]
    harness.wait_until(lambda: t.task(tid)["steps"][0]["status"] ==
                       "in_progress", 10, message="the step running")
    assert t.request("DELETE", "/v1/tasks/%d" % tid).status == 200
    harness.wait_until(lambda: t.task(tid)["steps"][0]["status"] ==
                       "cancelled", 10, message="the step's end written")
    got = scrape(t)
    labels = dict(namespace="default", template="doomed", step="fails")
    assert value(got, "taskerd_steps_started_total", **labels) == 1, got
    for name in ("retried", "failed", "completed"):
        assert value(got, "taskerd_steps_%s_total" % name, **labels) == 0, \
            (name, got)


def test_api_requests_are_counted_by_the_route_they_name(taskerd):
    """A path that names no resource counts as route "other" (they were
    labelled as the nearest route: /health/x as /health/ready,
    /v1/tasks/1/x as transitions, /favicon.ico as a template's route),
    and answers given before the path was
    read count too (an unknown method's 501, a path of too many
    segments)."""
    t = taskerd(templates={"metered.yaml": SLOW})
    before = scrape(t)
    for method, path, status in (
            ("GET", "/health/x", 404), ("GET", "/v1/tasks/1/x", 404),
            ("GET", "/v1/workers/x", 404), ("BREW", "/v1/tasks", 501),
            ("GET", "/favicon.ico", 404),
            ("GET", "/a" * 40, 404), ("GET", "/health/ready", 200),
            ("GET", "/v1/tasks/1/transitions", 404)):
        r = t.request(method, path)
        assert r.status == status, (method, path, r.status, r.body)
    after = scrape(t)

    def counted(route, status):
        return value(after, "taskerd_api_requests_total", route=route,
                     status=status) - value(
            before, "taskerd_api_requests_total", route=route, status=status)
    assert counted("other", "404") == 5, after
    assert counted("other", "501") == 1, after
    assert counted("/health/ready", "200") == 1, after
    assert counted("/v1/tasks/{id}/transitions", "404") == 1, after


def test_parser_rejects_bad_exposition():
    # The checker itself must be able to fail.
    for bad in ["x 1\n",                                   # undeclared
                "# TYPE x counter\nx{a=\"1} 1\n",          # broken label
                "# TYPE x counter\nx 1\nx 2\n",            # duplicate
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                "h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n"]:
        try:
            parse(bad)
        except AssertionError:
            continue
        raise AssertionError("accepted: %r" % bad)


def test_scheduler_gauges_tell_running_from_queued(taskerd):
    """One worker, three slow steps: one runs on the worker, the others
    wait for it.  The inflight gauge ("steps running on workers") counted
    the waiting ones too, which queue_depth already counts."""
    slow = ("name: snail\nstep_templates:\n  - name: only\n    handler: noop\n"
            "    handler_config: { sleep_ms: 4000 }\n")
    t = taskerd(templates={"snail.yaml": slow}, workers=1)
    for _ in range(3):
        t.create_task("snail", {})

    def both():
        s = scrape(t)
        q = value(s, "taskerd_scheduler_queue_depth")
        return s if q >= 1 else None
    s = harness.wait_until(both, 10, message="a step queued for the worker")
    assert value(s, "taskerd_scheduler_inflight") == 1, \
        {k: v for k, v in s.items() if k[0].startswith("taskerd_sched")}
    busy = [w for w in t.workers() if w["state"] == "busy"]
    assert len(busy) == 1, t.workers()
