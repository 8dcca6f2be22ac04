"""The seed's user-onboarding workflow end to end (issue 4): taskerd runs
examples/onboarding/templates/user_onboarding.yaml against the real mock
services (examples/onboarding/mock-services) over loopback HTTP, and a user
drives it through the template's routes (POST /user_onboarding,
GET /user_onboarding/status/{id}, GET /user_onboarding/results/{id}).

Each test starts its own mock-services (free ports, --seed 1) and taskerd
(fresh database), and stops both by pid.  scripts/demo is covered by
test_demo.py; nothing here runs it.
"""

import atexit
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

import harness

ONBOARDING = harness.REPO / "examples" / "onboarding"
MOCK_BIN = ONBOARDING / "mock-services"
TEMPLATE_FILE = ONBOARDING / "templates" / "user_onboarding.yaml"

STEP_NAMES = ["validate_user_info", "create_user_account", "setup_billing",
              "configure_preferences", "send_welcome_sequence",
              "update_user_status"]
STEP_SERVICE = {"validate_user_info": "user_service",
                "create_user_account": "user_service",
                "setup_billing": "billing_service",
                "configure_preferences": "user_service",
                "send_welcome_sequence": "notification_service",
                "update_user_status": "user_service"}
# What each step calls (method, path pattern) on which mock service.
STEP_CALL = {"validate_user_info": ("user", "POST", r"/users/validate"),
             "create_user_account": ("user", "POST", r"/users"),
             "setup_billing": ("billing", "POST", r"/billing/profiles"),
             "configure_preferences": ("user", "PUT",
                                       r"/users/usr_\d+/preferences"),
             "send_welcome_sequence": ("notification", "POST",
                                       r"/notifications/welcome"),
             "update_user_status": ("user", "PATCH", r"/users/usr_\d+")}

# The seed's two `curl -d` payloads, byte for byte (whitespace included).
# test_seed_payloads_are_the_seeds checks them against the seed file when it
# is reachable from this tree.
SEED_FIRST = (
    '{\n    "user_onboarding": {\n      "user_info": {\n'
    '        "email": "test@example.com",\n        "first_name": "John",\n'
    '        "last_name": "Doe",\n        "phone": "+1234567890"\n'
    '      },\n      "billing_info": {\n        "plan_type": "premium",\n'
    '        "payment_method": "credit_card",\n'
    '        "billing_address": "123 Main St"\n      },\n'
    '      "preferences": {\n        "newsletter_opt_in": true,\n'
    '        "sms_notifications": false,\n'
    '        "data_sharing_consent": true\n      }\n    }\n  }')
SEED_SECOND = (
    '{\n    "user_onboarding": {\n      "user_info": {\n'
    '        "email": "enterprise@example.com",\n'
    '        "first_name": "Jane",\n        "last_name": "Smith"\n'
    '      },\n      "billing_info": {\n        "plan_type": "enterprise",\n'
    '        "payment_method": "invoice"\n      },\n'
    '      "preferences": {\n        "newsletter_opt_in": false,\n'
    '        "sms_notifications": true\n      }\n    }\n  }')
SEED_URL = "http://localhost:3000/user_onboarding"


def seed_file():
    """The seed (../shared/seed/ next to the repository), if present."""
    for d in (harness.REPO.parent / "shared" / "seed",):
        f = d / "000_5c9adb872deeac6a.txt"
        if f.is_file():
            return f
    return None


# ---------------------------------------------------------------------------
# mock-services, started and stopped by pid

class MockServices:
    SERVICES = ("user", "billing", "notification")

    def __init__(self, args=()):
        if not os.access(str(MOCK_BIN), os.X_OK):
            raise harness.HarnessError("%s is not built (run `make`)"
                                       % MOCK_BIN)
        self.dir = tempfile.mkdtemp(prefix="taskerd-mocks-")
        self.port_file = os.path.join(self.dir, "ports")
        self.logfile = os.path.join(self.dir, "mock-services.log")
        self._logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [str(MOCK_BIN), "--user-port", "0", "--billing-port", "0",
             "--notification-port", "0", "--port-file", self.port_file,
             "--seed", "1"] + list(args),
            cwd=self.dir, env=harness.clean_env(), stdin=subprocess.DEVNULL,
            stdout=self._logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        atexit.register(self.stop)     # also when the run is interrupted
        self.ports = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise harness.HarnessError(
                    "mock-services exited %s at start:\n%s"
                    % (self.proc.returncode, self.log_tail(20)))
            if os.path.exists(self.port_file):
                for line in harness.read_text(self.port_file).splitlines():
                    k, _, v = line.partition("=")
                    if k.strip() in self.SERVICES and v.strip().isdigit():
                        self.ports[k.strip()] = int(v)
                if len(self.ports) == 3:
                    return
            time.sleep(0.02)
        self.stop()
        raise harness.HarnessError("mock-services wrote no port file %s:\n%s"
                                   % (self.port_file, self.log_tail(20)))

    def url(self, service):
        return "http://127.0.0.1:%d" % self.ports[service]

    def request(self, service, method, path, json=None, timeout=10.0):
        return harness.http_request("127.0.0.1", self.ports[service], method,
                                    path, json_body=json, timeout=timeout)

    def get(self, service, path):
        r = self.request(service, "GET", path)
        assert r.status == 200, "%s GET %s -> %s %r" % (service, path,
                                                        r.status, r.body)
        return r.body

    def faults(self, service, **faults):
        r = self.request(service, "POST", "/_admin/faults", json=faults)
        assert r.status == 200, "POST %s/_admin/faults %r -> %s %r" % (
            service, faults, r.status, r.body)
        return r.body

    def clear_faults(self, service):
        r = self.request(service, "DELETE", "/_admin/faults")
        assert r.status in (200, 204), "DELETE %s/_admin/faults -> %s %r" % (
            service, r.status, r.body)

    def calls(self, correlation_id=None, service=None):
        q = {}
        if correlation_id is not None:
            q["correlation_id"] = correlation_id
        if service is not None:
            q["service"] = service
        path = "/_admin/calls" + ("?" + urllib.parse.urlencode(q) if q else "")
        return self.get("user", path)["calls"]

    def log(self):
        return harness.read_text(self.logfile)

    def log_tail(self, n=40):
        return harness.tail(self.log(), n)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._logf.close()
        return self.proc.returncode


@pytest.fixture
def mocks(request):
    m = MockServices()
    try:
        yield m
    finally:
        code = m.stop()
        failed = getattr(request.node, "_taskerd_failed", False)
        if failed:
            print("--- mock-services log (kept in %s), last 60 lines:\n%s"
                  % (m.logfile, m.log_tail(60)))
        else:
            shutil.rmtree(m.dir, ignore_errors=True)
        assert code == 0, "mock-services exited %s on SIGTERM" % code


def services_config(mocks, cooldown="1s", notification_failures=3):
    """services.<name> for the test: the mock's ports, short cooldowns."""
    return {
        "user_service": {"base_url": mocks.url("user"), "timeout": "5s",
                         "concurrency": 8,
                         "breaker": {"failures": 5, "cooldown": "1s"}},
        "billing_service": {"base_url": mocks.url("billing"),
                            "timeout": "15s", "concurrency": 4,
                            "breaker": {"failures": 5, "cooldown": "1s"}},
        "notification_service": {"base_url": mocks.url("notification"),
                                 "timeout": "5s", "concurrency": 2,
                                 "breaker": {"failures": notification_failures,
                                             "cooldown": cooldown}},
    }


def start_taskerd(taskerd, mocks, **kw):
    return taskerd(templates={"user_onboarding.yaml":
                              TEMPLATE_FILE.read_text()},
                   config={"services": services_config(mocks, **kw)},
                   workers=4)


# ---------------------------------------------------------------------------
# The user's side

def post_onboarding(t, payload):
    """POST /user_onboarding as the seed's curl does: the payload bytes as
    given, Content-Type application/json, Accept */*."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return t.request("POST", "/user_onboarding", data=data.encode(),
                     headers={"Content-Type": "application/json",
                              "Accept": "*/*", "User-Agent": "curl/7.88.1"})


def onboard(t, payload):
    """POST /user_onboarding, expect a created task; return the answer."""
    r = post_onboarding(t, payload)
    assert r.status in (200, 201, 202), \
        "POST /user_onboarding -> %s %r" % (r.status, r.body)
    b = r.body
    assert isinstance(b, dict) and b.get("success") is True, b
    assert isinstance(b.get("task_id"), int), b
    assert b.get("status") in ("pending", "in_progress"), b
    assert isinstance(b.get("monitor_url"), str), b
    return b


def monitor_path(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def payload(email, first="Ada", last="Lovelace", plan="free",
            payment="credit_card", prefs=None):
    billing = {"plan_type": plan}
    if payment is not None:
        billing["payment_method"] = payment
    return {"user_onboarding": {
        "user_info": {"email": email, "first_name": first, "last_name": last},
        "billing_info": billing,
        "preferences": prefs if prefs is not None
        else {"newsletter_opt_in": True}}}


def wait_all(t, task_ids, statuses=("complete", "error", "cancelled"),
             timeout=30.0):
    """Wait for every task to reach statuses; return {id: task}."""
    deadline = time.monotonic() + timeout
    done = {}
    for tid in task_ids:
        left = max(0.5, deadline - time.monotonic())
        done[tid] = t.wait_task(tid, statuses, timeout=left)
    return done


def services_by_name(t):
    r = t.get("/v1/services")
    assert r.status == 200, "GET /v1/services -> %s %r" % (r.status, r.body)
    return {s["name"]: s for s in r.body["services"]}


def ts(value):
    """A timestamp the API answered, as an aware datetime."""
    assert isinstance(value, str) and value, value
    v = value.replace("Z", "+00:00").replace(" ", "T")
    m = re.match(r"(.*[T ]\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d(:?\d\d)?)?$", v)
    assert m, "not a timestamp: %r" % value
    frac = (m.group(2) or "")[:7]
    tz = m.group(3) or "+00:00"
    if re.match(r"[+-]\d\d$", tz):
        tz += ":00"
    return datetime.datetime.fromisoformat(m.group(1) + frac + tz)


def steps_of(task):
    return harness.steps_by_name(task)


# ---------------------------------------------------------------------------

def test_seed_payloads_are_the_seeds():
    """The payloads these tests send are the seed's, byte for byte, and the
    seed sends them to POST /user_onboarding as JSON."""
    f = seed_file()
    if f is None:
        pytest.skip("the seed file is not reachable from %s" % harness.REPO)
    text = f.read_text()
    found = re.findall(r"curl -X POST (\S+) \\\n  -H '([^']*)' \\\n"
                       r"  -d '(.*?)'", text, re.S)
    assert [(u, h) for u, h, _ in found] == \
        [(SEED_URL, "Content-Type: application/json")] * 2, found
    assert [d for _, _, d in found] == [SEED_FIRST, SEED_SECOND]


def test_seed_requests_complete_with_status_and_results(taskerd, mocks):
    """Acceptance 1: the seed's two requests, as printed, each make a task
    that completes; status and results answer as the issue says; the user
    id the user service made is the one billing and notifications know."""
    t = start_taskerd(taskerd, mocks)
    # A slow notification service keeps the first task short of complete
    # long enough to ask for its results.
    mocks.faults("notification", latency_ms=1500)
    first = onboard(t, SEED_FIRST)
    second = onboard(t, SEED_SECOND)
    assert first["task_id"] != second["task_id"]
    for ans in (first, second):
        assert monitor_path(ans["monitor_url"]) == \
            "/user_onboarding/status/%d" % ans["task_id"], ans

    # While the welcome email is on its way: in progress, no results yet.
    def welcome_running():
        r = t.get(monitor_path(first["monitor_url"]))
        assert r.status == 200, (r.status, r.body)
        st = {s["name"]: s for s in r.body["steps"]}
        return r.body if st["send_welcome_sequence"]["status"] == \
            "in_progress" else None
    running = harness.wait_until(welcome_running, 15, interval=0.05,
                                 message="send_welcome_sequence in progress")
    assert running["status"] == "in_progress", running
    assert running.get("completed_at") is None, running
    r = t.get("/user_onboarding/results/%d" % first["task_id"])
    assert 400 <= r.status < 500, (r.status, r.body)
    assert r.body.get("success") is False, r.body
    assert "not complete" in str(r.body.get("error")), r.body
    where = r.body.get("details") if isinstance(r.body.get("details"), dict) \
        else r.body
    assert where.get("status") == "in_progress", r.body
    mocks.clear_faults("notification")

    for ans, email, plan, method in (
            (first, "test@example.com", "premium", "credit_card"),
            (second, "enterprise@example.com", "enterprise", "invoice")):
        tid = ans["task_id"]
        path = monitor_path(ans["monitor_url"])

        def complete():
            r = t.get(path)
            assert r.status == 200, (path, r.status, r.body)
            assert r.body["status"] not in ("error", "cancelled"), \
                json.dumps(r.body, indent=1)
            return r.body if r.body["status"] == "complete" else None
        st = harness.wait_until(complete, 25, interval=0.1,
                                message="task %d complete via %s" % (tid, path))

        # Status: the task, its times and each step with its service.
        assert st.get("task_id") == tid, st
        started, completed = ts(st["started_at"]), ts(st["completed_at"])
        assert started <= completed, st
        total = st.get("total_duration_ms")
        assert isinstance(total, (int, float)) and total >= 0, st
        assert abs(total - (completed - started).total_seconds() * 1000) \
            <= 2, st
        assert [s["name"] for s in st["steps"]] == STEP_NAMES, st
        for s in st["steps"]:
            assert s["service"] == STEP_SERVICE[s["name"]], s
            assert s["status"] == "complete", s
            s0, s1 = ts(s["started_at"]), ts(s["completed_at"])
            assert started <= s0 <= s1 <= completed, (st, s)
            assert isinstance(s.get("duration_ms"), (int, float)) and \
                abs(s["duration_ms"] - (s1 - s0).total_seconds() * 1000) \
                <= 2, s
        welcome = {s["name"]: s for s in st["steps"]}["send_welcome_sequence"]
        if ans is first:
            # It waited out the 1.5 s latency.
            assert welcome["duration_ms"] >= 1400, welcome

        # Results: the user, active, the three services.
        r = t.get("/user_onboarding/results/%d" % tid)
        assert r.status == 200, (r.status, r.body)
        res = r.body
        assert isinstance(res.get("user_id"), str) and res["user_id"], res
        assert res.get("account_status") == "active", res
        assert sorted(res.get("services_configured") or []) == \
            ["billing_service", "notification_service", "user_service"], res

        # The services agree: the user service's id for this email is the
        # one the billing profile and the welcome email carry.
        users = mocks.get("user", "/users?email=%s"
                          % urllib.parse.quote(email))["users"]
        assert len(users) == 1, users
        uid = users[0]["id"]
        assert uid == res["user_id"], (users, res)
        assert users[0]["status"] == "active", users
        profiles = mocks.get("billing", "/billing/profiles?user_id=%s"
                             % urllib.parse.quote(uid))["profiles"]
        assert len(profiles) == 1, profiles
        assert profiles[0]["user_id"] == uid, profiles
        assert profiles[0]["plan_type"] == plan, profiles
        assert profiles[0].get("payment_method") == method, profiles
        notes = mocks.get("notification", "/notifications?user_id=%s"
                          % urllib.parse.quote(uid))["notifications"]
        assert len(notes) == 1, notes
        assert notes[0]["user_id"] == uid, notes

    # The status route is this template's: an unknown id is a 404.
    r = t.get("/user_onboarding/status/999999")
    assert r.status == 404 and r.body.get("success") is False, (r.status,
                                                                 r.body)
    # Every error of a route names its code, as creation errors do.
    assert r.body.get("code") == "not_found", r.body
    r = t.get("/user_onboarding/results/999999")
    assert r.status == 404 and r.body.get("code") == "not_found", \
        (r.status, r.body)


def test_first_request_twice_already_exists(taskerd, mocks):
    """Acceptance 2: the seed's first request sent again ends
    create_user_account as already_exists with the same user, and the
    second task completes too."""
    t = start_taskerd(taskerd, mocks)
    a = onboard(t, SEED_FIRST)
    ta = t.wait_task(a["task_id"], timeout=20)
    assert ta["status"] == "complete", json.dumps(ta, indent=1)
    b = onboard(t, SEED_FIRST)
    assert b["task_id"] != a["task_id"], (a, b)
    tb = t.wait_task(b["task_id"], timeout=20)
    assert tb["status"] == "complete", json.dumps(tb, indent=1)

    ra = steps_of(ta)["create_user_account"]["results"]
    rb = steps_of(tb)["create_user_account"]["results"]
    assert ra.get("outcome") == "created", ra
    assert rb.get("outcome") == "already_exists", rb
    assert isinstance(ra.get("user_id"), str) and ra["user_id"], ra
    assert rb.get("user_id") == ra["user_id"], (ra, rb)
    assert steps_of(tb)["create_user_account"]["attempts"] == 1, tb

    # The user service still has the one user; the second run's user id
    # is what its results route answers.
    users = mocks.get("user", "/users?email=test%40example.com")["users"]
    assert [u["id"] for u in users] == [ra["user_id"]], users
    r = t.get("/user_onboarding/results/%d" % b["task_id"])
    assert r.status == 200 and r.body.get("user_id") == ra["user_id"], \
        (r.status, r.body)
    assert r.body.get("account_status") == "active", r.body
    # The second run met the 409 and looked the user up.
    calls = mocks.calls(correlation_id=tb["correlation_id"], service="user")
    assert any(c["method"] == "POST" and c["path"] == "/users"
               and c["status"] == 409 for c in calls), calls
    assert any(c["method"] == "GET" and c["path"] == "/users"
               and c["status"] == 200 for c in calls), calls


# mock-services draws each call's fault from (seed, service, Idempotency-Key,
# call number), so a seed fixes which attempts of which task fail, whatever
# the interleaving.  Under seed 5, 11 of the 20 setup_billing steps fail 1 to
# 3 times before succeeding (the test checks that retries happened and that
# all complete); under seed 1 one of them fails 6 times - more than retry_limit 5 allows, which is the workflow's answer to a
# service that bad, not a taskerd fault.
BILLING_SEED = "5"


@pytest.fixture
def billing_mocks(request):
    m = MockServices(["--seed", BILLING_SEED])
    try:
        yield m
    finally:
        if getattr(request.node, "_taskerd_failed", False):
            print("--- mock-services log, last 60 lines:\n" + m.log_tail(60))
        assert m.stop() == 0


def test_billing_failing_half_the_calls(taskerd, billing_mocks):
    """Acceptance 3: with billing failing 50% of its calls, 20 onboardings
    (distinct users) all complete, and retries show in the attempts."""
    mocks = billing_mocks
    t = start_taskerd(taskerd, mocks)
    mocks.faults("billing", failure_rate=0.5)
    ids = [onboard(t, payload("user%02d@example.com" % i,
                              plan=("free", "premium", "enterprise")[i % 3],
                              payment=("credit_card", "invoice")[i % 2]))
           ["task_id"] for i in range(20)]
    tasks = wait_all(t, ids, timeout=35)
    bad = {tid: task for tid, task in tasks.items()
           if task["status"] != "complete"}
    assert not bad, "%d of 20 tasks did not complete:\n%s\nservices: %s" % (
        len(bad), json.dumps([{"task_id": tid, "status": task["status"],
                               "setup_billing": steps_of(task)["setup_billing"]}
                              for tid, task in bad.items()], indent=1),
        json.dumps(services_by_name(t), indent=1))
    attempts = [steps_of(task)["setup_billing"]["attempts"]
                for task in tasks.values()]
    assert all(1 <= a <= 5 for a in attempts), attempts
    assert any(a > 1 for a in attempts), attempts
    # Each attempt was one call to billing; half of them failed.
    billing_calls = [c for c in mocks.calls(service="billing")
                     if c["path"] == "/billing/profiles"]
    assert len(billing_calls) == sum(attempts), (len(billing_calls), attempts)
    failed = [c for c in billing_calls if c["status"] >= 500]
    assert len(failed) == sum(attempts) - 20, (failed, attempts)
    assert services_by_name(t)["billing_service"]["failures"] == len(failed)


def test_notification_outage_breaker(taskerd, mocks):
    """Acceptance 4: with the notification service down its breaker opens;
    while open, the welcome steps wait without spending attempts; after
    the service is back every task completes and the breaker closes."""
    cooldown_s = 4
    t = start_taskerd(taskerd, mocks, cooldown="%ds" % cooldown_s,
                      notification_failures=3)
    mocks.faults("notification", outage=True)
    ids = [onboard(t, payload("down%d@example.com" % i))["task_id"]
           for i in range(5)]

    def opened():
        s = services_by_name(t)["notification_service"]
        return s if s["breaker"] == "open" else None
    svc = harness.wait_until(opened, 15, interval=0.05,
                             message="notification_service breaker open")
    assert svc["times_opened"] >= 1, svc
    assert svc["consecutive_failures"] >= 3, svc
    assert t.log_lines(r"circuit opened.*service=notification_service"), \
        t.log_tail(60)

    def welcome_attempts():
        out = {}
        for tid in ids:
            s = steps_of(t.task(tid))["send_welcome_sequence"]
            out[tid] = (s["status"], s["attempts"])
        return out

    # Every task reaches the welcome step (billing and preferences done)
    # while the breaker is still in its first cooldown.
    def all_waiting_at_welcome():
        for tid in ids:
            st = steps_of(t.task(tid))
            if st["setup_billing"]["status"] != "complete" or \
                    st["configure_preferences"]["status"] != "complete":
                return False
        return True
    harness.wait_until(all_waiting_at_welcome, 10, interval=0.1,
                       message="every task waiting at send_welcome_sequence")

    def settled():
        """(breaker, attempts, calls) read within one open period, once
        every call the service got is counted: a half-open probe (each
        cooldown's end) may be in flight, or its outcome not yet written,
        and the counts are compared only between probes."""
        before = services_by_name(t)["notification_service"]
        a = welcome_attempts()
        calls = [c for c in mocks.calls(service="notification")
                 if c["path"] == "/notifications/welcome"]
        after = services_by_name(t)["notification_service"]
        last[:] = [before, after, a, len(calls)]
        if before["breaker"] == after["breaker"] == "open" and \
                before["times_opened"] == after["times_opened"] and \
                all(st != "in_progress" for st, _ in a.values()) and \
                len(calls) == sum(n for _, n in a.values()):
            return before, a, calls
        return None

    def settled_snapshot():
        # The breaker never closes while the service is down: it is open
        # but for each probe, and so the wait ends within a cooldown.
        try:
            return harness.wait_until(settled, 3 * cooldown_s,
                                      interval=0.05,
                                      message="a moment between probes")
        except AssertionError as e:
            raise AssertionError("%s; last read (breaker before, after, "
                                 "attempts, calls): %r" % (e, last))
    last = []
    s1, a1, _ = settled_snapshot()
    time.sleep(2.5)     # longer than the step's backoff after 1-2 attempts
    s2, a2, calls_down = settled_snapshot()
    assert s1["breaker"] == "open" and s2["breaker"] == "open", (s1, s2)
    if s2["times_opened"] == s1["times_opened"]:
        # Still the same open period: not one attempt was spent.
        assert a1 == a2, (a1, a2, s1, s2)
    total = sum(n for _, n in a2.values())
    # Attempts: the failures that opened it (plus what was in flight then)
    # and one half-open probe per reopening - not one per backoff.
    bound = 3 + (svc["concurrency"] or 1) + s2["times_opened"]
    assert total <= bound, (a2, s2)
    assert all(status in ("pending", "waiting_for_retry", "enqueued")
               for status, _ in a2.values()), a2
    assert all(n < 5 for _, n in a2.values()), a2
    assert len(calls_down) == total, (len(calls_down), a2)
    assert all(c["status"] == 503 for c in calls_down), calls_down

    # The service comes back: the next probe closes the breaker and every
    # task completes.
    mocks.faults("notification", outage=False)
    tasks = wait_all(t, ids, timeout=25)
    for tid, task in tasks.items():
        assert task["status"] == "complete", json.dumps(task, indent=1)
        w = steps_of(task)["send_welcome_sequence"]
        assert w["attempts"] <= 5, w
    s3 = services_by_name(t)["notification_service"]
    assert s3["breaker"] == "closed", s3
    assert s3["consecutive_failures"] == 0, s3
    assert s3["inflight"] == 0, s3
    assert t.log_lines(r"circuit closed.*service=notification_service"), \
        t.log_tail(60)


def test_notification_long_outage_lone_task_completes(taskerd, mocks):
    """Acceptance 4 for an outage longer than a few cooldowns with a single
    onboarding waiting: its welcome step must wait while the breaker is
    open, not run out of attempts, and complete once the service is back."""
    t = start_taskerd(taskerd, mocks, cooldown="1s", notification_failures=3)
    mocks.faults("notification", outage=True)
    tid = onboard(t, payload("lone@example.com"))["task_id"]
    harness.wait_until(
        lambda: services_by_name(t)["notification_service"]["breaker"]
        == "open", 15, message="notification_service breaker open")
    history = []
    deadline = time.monotonic() + 6     # six cooldowns of outage
    while time.monotonic() < deadline:
        w = steps_of(t.task(tid))["send_welcome_sequence"]
        s = services_by_name(t)["notification_service"]
        history.append((round(6 - (deadline - time.monotonic()), 1),
                        w["status"], w["attempts"], s["breaker"],
                        s["times_opened"]))
        assert w["status"] != "error", \
            "send_welcome_sequence ran out of attempts while the breaker " \
            "kept it waiting (elapsed s, status, attempts, breaker, " \
            "times_opened): %s\nlast_error: %s" % (history, w["last_error"])
        time.sleep(0.5)
    mocks.faults("notification", outage=False)
    task = t.wait_task(tid, timeout=20)
    assert task["status"] == "complete", (history, json.dumps(task, indent=1))


def test_premium_without_payment_method_is_permanent(taskerd, mocks):
    """Acceptance 5: a premium plan without a payment method ends
    setup_billing in error after one attempt (402), the task in error, and
    nothing after setup_billing runs."""
    t = start_taskerd(taskerd, mocks)
    a = onboard(t, payload("nopay@example.com", plan="premium", payment=None))
    task = t.wait_task(a["task_id"], timeout=20)
    assert task["status"] == "error", json.dumps(task, indent=1)
    time.sleep(1.0)     # nothing further happens afterwards either
    task = t.task(a["task_id"])
    assert task["status"] == "error", json.dumps(task, indent=1)
    st = steps_of(task)
    billing = st["setup_billing"]
    assert billing["status"] == "error", billing
    assert billing["attempts"] == 1, billing
    err = billing.get("last_error") or {}
    assert err.get("http_status") == 402, billing
    for name in ("send_welcome_sequence", "update_user_status"):
        assert st[name]["status"] == "pending", st[name]
        assert st[name]["attempts"] == 0, st[name]
    assert st["create_user_account"]["status"] == "complete", st
    # One call to billing, none to notifications.
    calls = mocks.calls(correlation_id=task["correlation_id"])
    assert [c["status"] for c in calls if c["service"] == "billing"] == \
        [402], calls
    assert not [c for c in calls if c["service"] == "notification"], calls
    # A 402 is the caller's problem, not an unwell billing service.
    b = services_by_name(t)["billing_service"]
    assert b["breaker"] == "closed" and b["failures"] == 0, b
    # The user's side: status says error; results say not complete.
    r = t.get(monitor_path(a["monitor_url"]))
    assert r.status == 200 and r.body["status"] == "error", (r.status, r.body)
    sb = {s["name"]: s for s in r.body["steps"]}["setup_billing"]
    assert sb["status"] == "error", r.body
    r = t.get("/user_onboarding/results/%d" % a["task_id"])
    assert r.status == 409 and r.body.get("success") is False, \
        (r.status, r.body)
    assert r.body.get("code") == "invalid_state", r.body
    where = r.body.get("details") if isinstance(r.body.get("details"), dict) \
        else r.body
    assert where.get("status") == "error", r.body
    # Ended, not "not complete yet": waiting will not bring its results.
    assert "without all its results" in json.dumps(r.body), r.body

    # An operator sets billing up by hand and resolves the step: the rest
    # runs, the task ends resolved_manually, and its results are there
    # (billing among the services configured: by hand).
    r = t.patch("/v1/tasks/%d/steps/setup_billing" % a["task_id"],
                json={"action": "resolve_manually",
                      "reason": "billing set up by hand"})
    assert r.status == 200, (r.status, r.body)
    task = t.wait_task(a["task_id"], timeout=20)
    assert task["status"] == "resolved_manually", json.dumps(task, indent=1)
    r = t.get("/user_onboarding/results/%d" % a["task_id"])
    assert r.status == 200, (r.status, r.body)
    assert r.body.get("account_status") == "active", r.body
    assert sorted(r.body.get("services_configured") or []) == \
        ["billing_service", "notification_service", "user_service"], r.body


def test_every_call_carries_the_correlation_id(taskerd, mocks):
    """Acceptance 6: each service call of a task carried that task's
    correlation id (and its idempotency key), as the mock services log."""
    t = start_taskerd(taskerd, mocks)
    ids = [onboard(t, SEED_FIRST)["task_id"],
           onboard(t, SEED_SECOND)["task_id"]]
    tasks = wait_all(t, ids, timeout=25)
    corr = {}
    for tid, task in tasks.items():
        assert task["status"] == "complete", json.dumps(task, indent=1)
        assert isinstance(task.get("correlation_id"), str) and \
            task["correlation_id"], task
        corr[tid] = task["correlation_id"]
    assert len(set(corr.values())) == 2, corr

    all_calls = mocks.calls()
    for tid, cid in corr.items():
        mine = mocks.calls(correlation_id=cid)
        assert len(mine) >= 6, mine
        assert {c["service"] for c in mine} == \
            {"user", "billing", "notification"}, mine
        # Every step's call is there, with the step's idempotency key.
        for step, (service, method, path) in STEP_CALL.items():
            hits = [c for c in mine if c["service"] == service
                    and c["method"] == method
                    and re.fullmatch(path, c["path"])]
            assert hits, "no %s %s call of task %d's %s with correlation " \
                "id %s: %s" % (method, path, tid, step, cid, mine)
            assert all(c["idempotency_key"] == "%d:%s" % (tid, step)
                       for c in hits), (step, hits)
        # No call of this task (known by its idempotency key) lacks it.
        keyed = [c for c in all_calls if (c.get("idempotency_key") or "")
                 .startswith("%d:" % tid)]
        assert keyed and all(c["correlation_id"] == cid for c in keyed), \
            (cid, keyed)
    # And every call the services saw belongs to one of the two tasks.
    assert all(c["correlation_id"] in corr.values() for c in all_calls), \
        (corr, all_calls)
    # The services' own log says the same, one line per call.
    lines = [l for l in mocks.log().splitlines()
             if 'msg="request"' in l and "path=/_admin" not in l]
    assert len(lines) == len(all_calls), (len(lines), len(all_calls))
    for l in lines:
        m = re.search(r"correlation_id=(\S+)", l)
        assert m and m.group(1).strip('"') in corr.values(), l


def test_invalid_onboarding_data_is_422_and_no_task(taskerd, mocks):
    """Invalid data answers 422 {success: false, error, details: [...]} and
    creates no task (and calls no service)."""
    t = start_taskerd(taskerd, mocks)
    bad_email = json.loads(SEED_FIRST)
    bad_email["user_onboarding"]["user_info"]["email"] = "not-an-email"
    no_billing = json.loads(SEED_SECOND)
    del no_billing["user_onboarding"]["billing_info"]
    bad_plan = json.loads(SEED_SECOND)
    bad_plan["user_onboarding"]["billing_info"]["plan_type"] = "platinum"
    no_member = json.loads(SEED_FIRST)["user_onboarding"]
    for body, mention in ((bad_email, "email"), (no_billing, "billing_info"),
                          (bad_plan, "plan_type"),
                          (no_member, "user_onboarding")):
        r = post_onboarding(t, body)
        assert r.status == 422, (body, r.status, r.body)
        assert r.headers.get("Content-Type", "").startswith(
            "application/json"), r.headers
        assert isinstance(r.body, dict) and r.body.get("success") is False, \
            r.body
        assert isinstance(r.body.get("error"), str) and r.body["error"], \
            r.body
        assert r.body.get("code") == "invalid_context", r.body
        details = r.body.get("details")
        assert isinstance(details, list) and details, r.body
        assert mention in json.dumps(details), (mention, r.body)
        assert "task_id" not in r.body, r.body
    r = t.get("/v1/tasks")
    assert r.status == 200 and r.body["tasks"] == [], (r.status, r.body)
    assert mocks.calls() == []
