"""Retry accounting and backoff (issue 3, acceptance 1-4).

Every test drives an `http` step against a local service whose answers the
test scripts, and then checks what a user sees: the step's attempts and
status in the API, the requests the service received (and when), and the
audit history under GET .../transitions.

  - 500, 500, 200 with retry_limit 3 and backoff base 300ms, jitter none:
    complete after exactly 3 attempts, the gaps follow the backoff
    (>= 300 ms then >= 600 ms), next_attempt_at is visible while waiting.
  - retry_limit 2, always 500: error after exactly 2 attempts, task error,
    the dependent step never ran.
  - 429 with Retry-After (delta seconds, HTTP-date, and 0 clipped to 1 s):
    the next attempt is not earlier than the service asked.
  - 400 on the first attempt: error after 1 attempt, whatever is left.
"""

import email.utils
import math
import threading
import time
from datetime import datetime

import harness

# Scheduling slack for lower bounds: the service stamps t_end just before it
# writes the answer; the supervisor computes next_attempt_at later than that,
# so a correct daemon is never early.  This only absorbs clock granularity.
EARLY = 0.03
# Upper bounds are generous: a 2-core CI box may be busy.
LATE = 1.5


def template(name, url, limit, backoff, dependent_url=None, extra=""):
    text = """\
name: {name}
namespace_name: retries
version: 1.0.0
step_templates:
  - name: call
    handler: http
    default_retry_limit: {limit}
    timeout: 10s
    backoff: {backoff}
{extra}    handler_config:
      method: POST
      url: "{url}"
      body: {{ order: "{{{{context.order}}}}" }}
""".format(name=name, limit=limit, backoff=backoff, url=url, extra=extra)
    if dependent_url:
        text += """\
  - name: notify
    handler: http
    depends_on_step: call
    default_retry_limit: 1
    timeout: 10s
    handler_config:
      method: POST
      url: "{url}"
      body: {{ order: "{{{{context.order}}}}" }}
""".format(url=dependent_url)
    return text


def scripted(answers):
    """A route handler answering answers[i] to the i-th call (the last one
    repeats): each answer is (status, body[, headers])."""
    lock = threading.Lock()
    calls = {"n": 0}

    def handler(req):
        with lock:
            i = calls["n"]
            calls["n"] += 1
        a = answers[min(i, len(answers) - 1)]
        return a(req) if callable(a) else a
    return handler


def step_transitions(t, task_id, step):
    r = t.get("/v1/tasks/%s/steps/%s/transitions" % (task_id, step))
    assert r.status == 200, (r.status, r.body)
    assert isinstance(r.body, dict) and isinstance(r.body.get("transitions"), list), r.body
    return r.body["transitions"]


def pairs(transitions):
    return [(x["from_state"], x["to_state"]) for x in transitions]


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def test_500_twice_then_200_follows_backoff(taskerd, service):
    service.route("POST", "/flaky", scripted([
        (500, {"error": "boom 1"}),
        (500, {"error": "boom 2"}),
        (200, {"ok": True, "order": 7}),
    ]))
    service.route("POST", "/notify", status=200, body={"notified": True})
    t = taskerd(templates={"flaky.yaml": template(
        "flaky", service.url + "/flaky", 3,
        "{ base: 300ms, max: 10s, jitter: none }",
        dependent_url=service.url + "/notify")})
    tid = t.create_task("flaky", {"order": 7}, namespace="retries")["task_id"]

    # While the step waits for its retry, the API says when it is due.
    seen_waiting = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = t.get("/v1/tasks/%s/steps/call" % tid)
        assert r.status == 200, (r.status, r.body)
        s = r.body
        if s["status"] == "waiting_for_retry":
            seen_waiting.append(s)
        if s["status"] in ("complete", "error"):
            break
        time.sleep(0.02)
    task = t.wait_task(tid, timeout=20)
    steps = harness.steps_by_name(task)
    call = steps["call"]
    assert task["status"] == "complete", task
    assert (call["status"], call["attempts"], call["retry_limit"]) == \
        ("complete", 3, 3), call
    assert call["results"] == {"ok": True, "order": 7}, call
    assert call["next_attempt_at"] is None, call
    assert steps["notify"]["status"] == "complete" and \
        steps["notify"]["attempts"] == 1, steps["notify"]

    assert seen_waiting, "never saw the step in waiting_for_retry"
    for s in seen_waiting:
        assert s["next_attempt_at"] is not None, s
        assert s["attempts"] in (1, 2), s
        assert s["last_error"]["http_status"] == 500, s

    reqs = service.requests_for("/flaky")
    assert len(reqs) == 3, reqs
    assert all(r.json == {"order": "7"} or r.json == {"order": 7} for r in reqs), \
        [r.json for r in reqs]
    gap1 = reqs[1].t - reqs[0].t_end
    gap2 = reqs[2].t - reqs[1].t_end
    assert gap1 >= 0.300 - EARLY, "attempt 2 came %.3fs after attempt 1 " \
        "failed; backoff is 300ms" % gap1
    assert gap2 >= 0.600 - EARLY, "attempt 3 came %.3fs after attempt 2 " \
        "failed; backoff is 600ms" % gap2
    assert gap1 <= 0.300 + LATE, "attempt 2 came %.3fs after attempt 1" % gap1
    assert gap2 <= 0.600 + LATE, "attempt 3 came %.3fs after attempt 2" % gap2

    tr = step_transitions(t, tid, "call")
    assert pairs(tr) == [
        ("pending", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "complete"),
    ], pairs(tr)
    starts = [x for x in tr if x["to_state"] == "in_progress"]
    assert [x["metadata"].get("attempt") for x in starts] == [1, 2, 3], tr
    waits = [x for x in tr if x["to_state"] == "waiting_for_retry"]
    assert [x["metadata"].get("attempt") for x in waits] == [1, 2], waits
    assert [x["metadata"].get("delay_ms") for x in waits] == [300, 600], waits
    for w in waits:
        assert w["metadata"]["outcome"] == "retryable", w
        assert w["metadata"]["error"]["http_status"] == 500, w
        assert w["metadata"]["error"]["code"] == "http_500", w
    assert tr[-1]["metadata"].get("attempt") == 3, tr[-1]
    assert tr[-1]["metadata"].get("outcome") == "success", tr[-1]
    # The retries did not start before the backoff had passed, in the
    # database's own clock either.
    assert ts(tr[2]["created_at"]) - ts(tr[1]["created_at"]) >= 0.300 - EARLY, tr
    assert ts(tr[4]["created_at"]) - ts(tr[3]["created_at"]) >= 0.600 - EARLY, tr

    # The whole-task history has the step's story and the task's.
    r = t.get("/v1/tasks/%s/transitions" % tid)
    assert r.status == 200, (r.status, r.body)
    all_tr = r.body["transitions"]
    assert [(x["from_state"], x["to_state"]) for x in all_tr
            if x["scope"] == "step" and x["step"] == "call"] == pairs(tr)
    task_tr = [(x["from_state"], x["to_state"]) for x in all_tr
               if x["scope"] == "task"]
    assert task_tr == [(None, "pending"), ("pending", "in_progress"),
                       ("in_progress", "complete")], task_tr


def test_always_500_errors_after_retry_limit_dependents_never_run(taskerd, service):
    service.route("POST", "/broken", status=500, body={"error": "down"})
    service.route("POST", "/notify", status=200, body={"notified": True})
    t = taskerd(templates={"broken.yaml": template(
        "broken", service.url + "/broken", 2,
        "{ base: 200ms, max: 1s, jitter: none }",
        dependent_url=service.url + "/notify")})
    tid = t.create_task("broken", {"order": 8}, namespace="retries")["task_id"]

    task = t.wait_task(tid, timeout=20)
    steps = harness.steps_by_name(task)
    call, notify = steps["call"], steps["notify"]
    assert task["status"] == "error", task
    assert (call["status"], call["attempts"], call["retry_limit"]) == \
        ("error", 2, 2), call
    assert call["last_error"]["http_status"] == 500, call
    assert call["last_error"]["code"] == "http_500", call
    assert call["next_attempt_at"] is None, call
    assert (notify["status"], notify["attempts"]) == ("pending", 0), notify
    assert notify["started_at"] is None, notify

    # Nothing more happens: no third attempt, no call to the dependent.
    time.sleep(1.0)
    assert len(service.requests_for("/broken")) == 2, service.requests
    assert service.requests_for("/notify") == [], service.requests
    task = t.task(tid)
    assert task["status"] == "error", task
    assert harness.steps_by_name(task)["call"]["attempts"] == 2, task

    tr = step_transitions(t, tid, "call")
    assert pairs(tr) == [
        ("pending", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "error"),
    ], pairs(tr)
    assert tr[-1]["metadata"]["attempt"] == 2, tr[-1]
    assert tr[-1]["metadata"]["error"]["http_status"] == 500, tr[-1]

    r = t.get("/v1/tasks/%s/transitions" % tid)
    task_tr = [(x["from_state"], x["to_state"]) for x in r.body["transitions"]
               if x["scope"] == "task"]
    assert task_tr[-1] == ("in_progress", "error"), task_tr


def _retry_after_case(taskerd, service, name, header_fn):
    """429 with the Retry-After header_fn() gives, then 200.  Returns the
    two requests, the header value sent and the step's transitions."""
    sent = {}

    def first(req):
        sent["value"] = header_fn()
        sent["wall"] = time.time()
        return 429, {"error": "slow down"}, {"Retry-After": sent["value"]}
    service.route("POST", "/" + name, scripted([first, (200, {"ok": True})]))
    t = taskerd(templates={"%s.yaml" % name: template(
        name, service.url + "/" + name, 3,
        "{ base: 100ms, max: 200ms, jitter: none }")})
    tid = t.create_task(name, {"order": 1}, namespace="retries")["task_id"]
    task = t.wait_task(tid, timeout=20)
    call = task["steps"][0]
    assert task["status"] == "complete", task
    assert (call["status"], call["attempts"]) == ("complete", 2), call
    reqs = service.requests_for("/" + name)
    assert len(reqs) == 2, reqs
    tr = step_transitions(t, tid, "call")
    assert pairs(tr) == [
        ("pending", "in_progress"),
        ("in_progress", "waiting_for_retry"),
        ("waiting_for_retry", "in_progress"),
        ("in_progress", "complete"),
    ], pairs(tr)
    assert tr[1]["metadata"]["error"]["http_status"] == 429, tr[1]
    return reqs, sent, tr


def test_429_retry_after_seconds(taskerd, service):
    reqs, sent, tr = _retry_after_case(taskerd, service, "throttled",
                                       lambda: "2")
    gap = reqs[1].t - reqs[0].t_end
    assert gap >= 2.0 - EARLY, "retried %.3fs after Retry-After: 2" % gap
    assert gap <= 2.0 + LATE, "retried %.3fs after Retry-After: 2" % gap
    meta = tr[1]["metadata"]
    assert meta.get("retry_after_ms") == 2000, meta
    assert meta.get("delay_ms") == 2000, meta


def test_429_retry_after_http_date(taskerd, service):
    # An HTTP-date about 2 s ahead (whole seconds: 2 < date - now <= 3).
    def date():
        return email.utils.formatdate(math.floor(time.time()) + 3, usegmt=True)
    reqs, sent, tr = _retry_after_case(taskerd, service, "dated", date)
    target = email.utils.parsedate_to_datetime(sent["value"]).timestamp()
    assert reqs[1].wall >= target - EARLY, \
        "retried at %.3f, before the Retry-After date %s (%.3f)" % (
            reqs[1].wall, sent["value"], target)
    gap = reqs[1].t - reqs[0].t_end
    assert gap >= 1.9, "retried %.3fs after a Retry-After date ~2-3s ahead" % gap
    assert reqs[1].wall <= target + LATE, (reqs[1].wall, target)
    meta = tr[1]["metadata"]
    assert meta.get("retry_after_ms") in (2000, 3000), meta
    assert meta.get("delay_ms") == meta.get("retry_after_ms"), meta


def test_429_retry_after_zero_is_clipped_to_one_second(taskerd, service):
    reqs, sent, tr = _retry_after_case(taskerd, service, "eager", lambda: "0")
    gap = reqs[1].t - reqs[0].t_end
    assert gap >= 1.0 - EARLY, "Retry-After: 0 retried after %.3fs; the " \
        "floor is 1s" % gap
    assert gap <= 1.0 + LATE, gap
    assert tr[1]["metadata"].get("delay_ms") == 1000, tr[1]["metadata"]


def test_400_is_permanent_on_first_attempt(taskerd, service):
    service.route("POST", "/reject", status=400, body={"error": "bad order"})
    service.route("POST", "/notify", status=200, body={"notified": True})
    t = taskerd(templates={"reject.yaml": template(
        "reject", service.url + "/reject", 3,
        "{ base: 100ms, max: 200ms, jitter: none }",
        dependent_url=service.url + "/notify")})
    tid = t.create_task("reject", {"order": 9}, namespace="retries")["task_id"]
    task = t.wait_task(tid, timeout=20)
    steps = harness.steps_by_name(task)
    call = steps["call"]
    assert task["status"] == "error", task
    assert (call["status"], call["attempts"], call["retry_limit"]) == \
        ("error", 1, 3), call
    assert call["last_error"]["http_status"] == 400, call
    assert call["last_error"]["code"] == "http_400", call
    assert "bad order" in call["last_error"]["message"], call
    assert steps["notify"]["status"] == "pending", steps["notify"]
    time.sleep(0.5)
    assert len(service.requests_for("/reject")) == 1, service.requests
    assert service.requests_for("/notify") == []
    tr = step_transitions(t, tid, "call")
    assert pairs(tr) == [("pending", "in_progress"), ("in_progress", "error")], tr
    assert tr[1]["metadata"]["outcome"] == "permanent", tr[1]
    assert "delay_ms" not in tr[1]["metadata"], tr[1]


def test_step_that_never_ran_has_an_empty_history(taskerd):
    """A step that was never attempted has no transitions: the API answers
    an empty list, not a row of nulls."""
    t = taskerd(templates={"blocked.yaml": """\
name: blocked
namespace_name: retries
version: 1.0.0
step_templates:
  - name: first
    handler: noop
    handler_config: { fail: permanent }
  - name: second
    handler: noop
    depends_on_step: first
"""})
    tid = t.create_task("blocked", {}, namespace="retries")["task_id"]
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    assert harness.steps_by_name(task)["second"]["status"] == "pending", task
    assert pairs(step_transitions(t, tid, "first")) == [
        ("pending", "in_progress"), ("in_progress", "error")]
    tr = step_transitions(t, tid, "second")
    assert tr == [], "GET .../steps/second/transitions for a step that " \
        "never ran answered %r" % (tr,)
    # An unknown step is still a 404.
    r = t.get("/v1/tasks/%s/steps/nosuch/transitions" % tid)
    harness.assert_json_error(r, 404, "not_found")


def _always_500_delays(t, service, path, tid):
    """The step 'call' of task tid against an always-500 path: wait for its
    error; return (step, its waiting transitions, the requests)."""
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "error", task
    call = task["steps"][0]
    tr = step_transitions(t, tid, "call")
    waits = [x for x in tr if x["to_state"] == "waiting_for_retry"]
    return call, waits, service.requests_for(path)


def test_backoff_defaults_from_config_and_max_cap(taskerd, service):
    service.route("POST", "/down", status=500, body={"error": "down"})
    tmpl = template("capped", service.url + "/down", 4, "{}").replace(
        "    backoff: {}\n", "")
    t = taskerd(templates={"capped.yaml": tmpl},
                config={"steps": {"backoff": {"base": "250ms", "max": "400ms",
                                              "jitter": "none"}}})
    tid = t.create_task("capped", {"order": 1}, namespace="retries")["task_id"]
    call, waits, reqs = _always_500_delays(t, service, "/down", tid)
    assert (call["status"], call["attempts"]) == ("error", 4), call
    # base, then 2 * base capped at max, and max again.
    assert [w["metadata"].get("delay_ms") for w in waits] == [250, 400, 400], waits
    assert len(reqs) == 4, reqs
    for i, want in enumerate((0.25, 0.4, 0.4)):
        gap = reqs[i + 1].t - reqs[i].t_end
        assert want - EARLY <= gap <= want + LATE, (i, gap, want)


def test_equal_jitter_stays_in_its_bounds(taskerd, service):
    service.route("POST", "/down", status=500, body={"error": "down"})
    t = taskerd(templates={"jittery.yaml": template(
        "jittery", service.url + "/down", 3,
        "{ base: 400ms, max: 10s, jitter: equal }")})
    tid = t.create_task("jittery", {"order": 1}, namespace="retries")["task_id"]
    call, waits, reqs = _always_500_delays(t, service, "/down", tid)
    assert (call["status"], call["attempts"]) == ("error", 3), call
    d = [w["metadata"].get("delay_ms") for w in waits]
    assert len(d) == 2 and all(isinstance(x, int) for x in d), waits
    # equal jitter: half the exponential delay plus a random part of the rest.
    assert 200 <= d[0] <= 400 and 400 <= d[1] <= 800, d
    for i in range(2):
        gap = reqs[i + 1].t - reqs[i].t_end
        assert gap >= d[i] / 1000.0 - EARLY, (i, gap, d)


def test_retry_after_capped_at_a_day_and_only_on_429_503(taskerd, service):
    service.route("POST", "/later", status=503, body={"error": "maintenance"},
                  headers={"Retry-After": "999999"})
    service.route("POST", "/oops", scripted([
        (500, {"error": "oops"}, {"Retry-After": "30"}),
        (200, {"ok": True})]))
    t = taskerd(templates={
        "later.yaml": template("later", service.url + "/later", 3,
                               "{ base: 200ms, max: 1s, jitter: none }"),
        "oops.yaml": template("oops", service.url + "/oops", 3,
                              "{ base: 200ms, max: 1s, jitter: none }")})
    later = t.create_task("later", {"order": 1}, namespace="retries")["task_id"]
    oops = t.create_task("oops", {"order": 2}, namespace="retries")["task_id"]

    # A 500's Retry-After is not a promise: the backoff applies.
    task = t.wait_task(oops, timeout=20)
    assert task["status"] == "complete", task
    a, b = service.requests_for("/oops")
    gap = b.t - a.t_end
    assert 0.2 - EARLY <= gap <= 0.2 + LATE, "a 500 with Retry-After: 30 " \
        "was retried after %.3fs (backoff 200ms)" % gap
    tr = step_transitions(t, oops, "call")
    assert tr[1]["metadata"].get("delay_ms") == 200, tr[1]

    # 999999 s is clipped to 24 h, and the API says when.
    s = harness.wait_until(
        lambda: (lambda s: s if s["status"] == "waiting_for_retry" else None)(
            t.get("/v1/tasks/%s/steps/call" % later).body), 10,
        message="the 503 step waiting")
    due = ts(s["next_attempt_at"]) - time.time()
    assert 86400 - 120 <= due <= 86400 + 120, \
        "next attempt in %.0fs, expected 24h" % due
    tr = step_transitions(t, later, "call")
    assert tr[1]["metadata"].get("delay_ms") == 86400000, tr[1]
    assert tr[1]["metadata"].get("retry_after_ms") == 999999000, tr[1]
    assert len(service.requests_for("/later")) == 1


def test_not_retryable_step_errors_on_first_retryable_failure(taskerd, service):
    service.route("POST", "/once", status=503, body={"error": "busy"})
    t = taskerd(templates={"once.yaml": template(
        "once", service.url + "/once", 3,
        "{ base: 100ms, max: 200ms, jitter: none }",
        extra="    retryable: false\n")})
    tid = t.create_task("once", {"order": 1}, namespace="retries")["task_id"]
    task = t.wait_task(tid, timeout=20)
    call = task["steps"][0]
    assert task["status"] == "error", task
    assert (call["status"], call["attempts"], call["retryable"]) == \
        ("error", 1, False), call
    assert call["last_error"]["http_status"] == 503, call
    time.sleep(0.5)
    assert len(service.requests_for("/once")) == 1
