"""Two taskerd nodes on one PostgreSQL, and the faults they must survive
(issue 8, acceptance 1 and 2).

Both nodes share one database, each with its own node_id, port and workers,
and a short lease (scheduler.lease 2s) so a lost node's claims are taken
over in seconds.  A steady load of tasks (four http steps in a diamond, each
a call of 0.3 s to a Python service) is created through both nodes while:

  - one node is SIGKILLed: the other completes every task, and each step the
    dead node had claimed starts again within 2x the lease;
  - PostgreSQL crashes and restarts (`pg_ctl restart -m immediate`, and an
    immediate stop that stays down longer than the lease): every task
    completes, none is lost, creation is refused with 503 + Retry-After
    while the database is away.

In all of them the audit trail must show every step with exactly one
successful attempt and no two attempts of a step at once, and the service
must never see two calls with the same Idempotency-Key at once (a call ends
when it is answered or when its client hangs up).

Then one node is cut off from the database alone (its role may no longer
log in, its sessions are terminated) while it runs a step: the other node
takes the claim over; the cut-off node's outcome must be fenced off, and it
must not go on running the step while the other node runs it again.
"""


import itertools
import json
import os
import re
import subprocess
import threading
import time

import pytest

import harness
from conftest import running_cluster, taskerd_factory

LEASE_S = 2.0
STEP_S = 0.3            # each step's call to the service
RATE = 2.0              # tasks created per second, over both nodes
WORKERS = 4             # per node

TEMPLATE = """\
name: scale
namespace_name: it
version: 1.0.0
step_templates:
  - name: a
    handler: http
    retry_limit: 5
    timeout: 10s
    handler_config: { method: POST, url: "@SVC@/a", body: { n: "{{context.n}}" } }
  - name: b
    handler: http
    depends_on_step: a
    retry_limit: 5
    timeout: 10s
    handler_config: { method: POST, url: "@SVC@/b", body: { n: "{{context.n}}" } }
  - name: c
    handler: http
    depends_on_step: a
    retry_limit: 5
    timeout: 10s
    handler_config: { method: POST, url: "@SVC@/c", body: { n: "{{context.n}}" } }
  - name: d
    handler: http
    depends_on_steps: [b, c]
    retry_limit: 5
    timeout: 10s
    handler_config: { method: POST, url: "@SVC@/d", body: { n: "{{context.n}}" } }
"""
STEPS = ("a", "b", "c", "d")

# One long step (the partition tests).
PARTITION = """\
name: long
namespace_name: it
version: 1.0.0
step_templates:
  - name: long_call
    handler: http
    retry_limit: 5
    timeout: 30s
    handler_config: { method: POST, url: "@SVC@/long_call" }
"""


# ---------------------------------------------------------------------------

class Load:
    """Creates a task every 1/RATE s, round-robin over the nodes that
    nodes() returns, each POST on its own thread so a slow answer (the
    database being down) does not slow the pace.  Records every answer."""

    def __init__(self, nodes, rate=RATE):
        self.nodes = nodes
        self.rate = rate
        self.answers = []       # dicts: at, node, status, task_id, retry_after
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.posts = []
        self.seq = itertools.count()

    def start(self):
        self.thread.start()
        return self

    def _post(self, node, n):
        at = time.monotonic()
        try:
            r = node.post("/v1/tasks", json={
                "name": "scale", "namespace": "it", "context": {"n": n}},
                timeout=15)
            ans = {"status": r.status, "body": r.body,
                   "retry_after": r.headers.get("Retry-After"),
                   "ctype": r.headers.get("Content-Type"),
                   "task_id": r.body.get("task_id")
                   if r.status == 201 and isinstance(r.body, dict) else None}
        except OSError as e:
            ans = {"status": None, "error": repr(e), "task_id": None}
        ans.update(at=at, done=time.monotonic(), node=node.name, n=n)
        with self.lock:
            self.answers.append(ans)

    def _run(self):
        nxt = time.monotonic()
        rr = itertools.count()
        while not self.stopping.is_set():
            live = [t for t in self.nodes() if t.running]
            if live:
                node = live[next(rr) % len(live)]
                th = threading.Thread(target=self._post,
                                      args=(node, next(self.seq)), daemon=True)
                th.start()
                self.posts.append(th)
            nxt += 1.0 / self.rate
            self.stopping.wait(max(0.0, nxt - time.monotonic()))

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        for th in self.posts:
            th.join(20)
        assert not any(th.is_alive() for th in self.posts), "a POST hung"
        return self.created()

    def created(self):
        with self.lock:
            return [a["task_id"] for a in self.answers if a["task_id"]]


def slow_service(service, seconds=STEP_S, steps=STEPS):
    """Each step's route answers 200 after `seconds`, or stops when its
    client hangs up (a killed worker): the call ends then."""
    for name in steps:
        def answer(req, name=name):
            req.wait_or_gone(seconds)
            return 200, {"ok": True, "step": name}
        service.route("POST", "/" + name, answer)


def start_nodes(taskerd, service, count=2):
    tmpl = {"scale.yaml": TEMPLATE.replace("@SVC@", service.url)}
    cfg = {"scheduler.lease": "%dms" % int(LEASE_S * 1000),
           "log.level": "info"}
    first = taskerd(templates=tmpl, config=cfg, workers=WORKERS)
    return [first] + [taskerd(templates=tmpl, config=cfg, workers=WORKERS,
                              db=first.db) for _ in range(count - 1)]


# A step held by the service, whose retry would wait an hour, and a quick
# one (the handed-back claim test).
HELD_AND_QUICK = {"held.yaml": """\
name: held
namespace_name: it
version: 1.0.0
step_templates:
  - name: hold
    handler: http
    retry_limit: 3
    backoff: { base: 1h, max: 1h, jitter: none }
    timeout: 60s
    handler_config: { method: POST, url: "@SVC@/hold" }
""", "quick.yaml": """\
name: quick
namespace_name: it
version: 1.0.0
step_templates:
  - name: q
    handler: noop
"""}


def wait_drained(pg, db, nodes, timeout):
    """Every task final; returns the tasks' rows."""
    def done():
        assert any(t.running for t in nodes), "no taskerd left running"
        rows = pg.json(db, "select id, status from tasks")
        return rows if rows and all(r["status"] in (
            "complete", "error", "cancelled") for r in rows) else None
    try:
        return harness.wait_until(done, timeout, interval=0.25,
                                  message="every task final")
    except AssertionError:
        left = pg.json(db, "select t.id, t.status, json_agg(json_build_object("
                       "'name', s.name, 'status', s.status, 'owner', "
                       "s.lease_owner, 'attempts', s.attempts)) as steps "
                       "from tasks t join steps s on s.task_id = t.id "
                       "where t.status not in ('complete', 'error', "
                       "'cancelled') group by t.id limit 5")
        nodes_rows = pg.json(db, "select id, lease_expires_at, heartbeat_at "
                             "from nodes")
        raise AssertionError("tasks not final after %.0fs: %s\nnodes: %s"
                             % (timeout, json.dumps(left, indent=1),
                                nodes_rows))


def service_calls(service):
    """(Idempotency-Key, start, end, label) of every call the service got;
    a call still unanswered counts as running until now."""
    now = time.monotonic()
    with service.lock:
        reqs = list(service.requests)
    return [(r.headers.get("Idempotency-Key"), r.t,
             min(x for x in (r.t_end, r.t_gone, now) if x is not None),
             "%s %s #%d" % (r.method, r.path, r.seq)) for r in reqs]


def check_history(pg, db, expect_steps):
    """Every step complete with exactly one successful attempt and no two
    attempts at once; returns the history."""
    hist = harness.attempt_history(pg, db)
    assert len(hist) == expect_steps, (len(hist), expect_steps)
    bad = harness.attempt_anomalies(hist)
    assert not bad, "the audit trail shows:\n" + "\n".join(bad[:20])
    for sid, st in hist.items():
        assert st["status"] == "complete", (sid, st)
        ok = [n for n, a in st["attempts"].items() if a["to"] == "complete"]
        assert len(ok) == 1, (sid, st)
    rows = pg.json(db, "select step_id, count(*) as n from step_transitions "
                   "where to_state = 'complete' group by step_id "
                   "having count(*) <> 1")
    assert rows == [], "steps completed more than once: %r" % rows
    return hist


# ---------------------------------------------------------------------------

def test_sigkill_one_node_mid_load(taskerd, service, pg):
    slow_service(service)
    n1, n2 = start_nodes(taskerd, service)
    victim, survivor = n2, n1
    vid = victim.config["node_id"]
    load = Load(lambda: [n1, n2]).start()
    try:
        # Mid-load, with steps of the victim's running (their start written).
        def victim_busy():
            return int(pg.scalar(victim.db, "select count(*) from steps where "
                                 "lease_owner = '%s' and status = "
                                 "'in_progress'" % vid)) >= 2
        time.sleep(2)       # a steady state first, not the first burst
        harness.wait_until(victim_busy, 15, interval=0.05,
                           message="two steps in progress on %s" % vid)
        workers = victim.workers_pids()
        assert len(workers) == WORKERS, workers
        kill_wall = time.time()
        kill_mono = time.monotonic()
        victim.kill()
        # The server may still commit a batch the victim had sent before
        # it died: its claims are final only once its backends are gone
        # (they carry its node_id as application_name).
        harness.wait_until(lambda: int(pg.scalar(
            victim.db, "select count(*) from pg_stat_activity where "
            "application_name = '%s'" % vid)) == 0, 15, interval=0.02,
            message="the dead node's backends to end")
        inflight = pg.json(victim.db, "select id, name, status, attempts "
                           "from steps where lease_owner = '%s' and status in "
                           "('enqueued', 'in_progress')" % vid)
        assert inflight, "the victim held no claims when it was killed"
        # Its workers notice the closed socket and exit by themselves.
        harness.wait_until(lambda: not any(harness.proc_alive(p)
                                           for p in workers), 5,
                           message="the dead node's workers to exit")
        workers_gone_s = time.monotonic() - kill_mono
        time.sleep(3)       # load goes on through the survivor alone
    finally:
        created = load.stop()
    assert created, load.answers

    wait_drained(pg, survivor.db, [survivor], 40)
    # Every task created through either node is complete.
    rows = pg.json(survivor.db, "select id, status from tasks")
    by_id = {r["id"]: r["status"] for r in rows}
    assert set(created) <= set(by_id), set(created) - set(by_id)
    assert set(by_id.values()) == {"complete"}, by_id

    hist = check_history(pg, survivor.db, len(by_id) * len(STEPS))

    # The steps the dead node had claimed were taken over and started
    # again, on the survivor, within 2x the lease: the ones it was running
    # lost their attempt (node_lost), the ones queued ahead for its workers
    # were handed back at no cost.
    taken = survivor.log_lines(r'msg="claim of a lost node taken over.*node=%s'
                               % vid)
    assert len(taken) >= len(inflight), (taken, inflight)
    late = []
    restarts = []
    for s in inflight:
        atts = hist[s["id"]]["attempts"]
        if s["status"] == "enqueued":
            assert all(a["code"] != "node_lost" for a in atts.values()), \
                (s, atts)
            before = s["attempts"]          # the attempts before the kill
        else:
            lost = atts.get(s["attempts"] + 1)
            assert lost is not None and lost["code"] == "node_lost", \
                (s, atts)
            before = s["attempts"] + 1
        again = [a["start"] for n, a in atts.items()
                 if n > before and a["start"] is not None]
        assert again, "step %r never started again: %r" % (s, atts)
        delay = min(again) / 1e6 - kill_wall
        restarts.append(round(delay, 2))
        if delay > 2 * LEASE_S:
            late.append((s, delay))
        assert all(a["node"] == survivor.config["node_id"]
                   for n, a in atts.items() if n > before), atts
    assert not late, "started again later than 2x the lease (%.1fs) after " \
        "the kill: %r" % (2 * LEASE_S, late)

    bad = harness.call_overlaps(service_calls(service))
    assert not bad, "\n".join(bad[:10])

    # What an operator sees: the survivor alive, the victim lost, holding
    # no claim any more.
    r = subprocess.run([str(harness.REPO / "tasker-ctl"), "--url",
                        survivor.url, "--no-color", "nodes"],
                       env=harness.clean_env(), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    table = {row[0]: row for row in (re.split(r"\s{2,}", line.strip())
                                     for line in r.stdout.splitlines()[1:])}
    assert table[survivor.config["node_id"] + " (this)"][4:6] == \
        ["alive", "0"], r.stdout
    assert table[vid][4:6] == ["lost", "0"], r.stdout
    print("in flight at the kill: %d (%s); started again after %s s; "
          "workers gone after %.2f s" % (
              len(inflight), ", ".join(s["status"] for s in inflight),
              sorted(restarts), workers_gone_s))


def test_a_lost_nodes_queued_claim_runs_at_once(taskerd, service, pg):
    """A step the dead node had claimed but not started (queued for a busy
    worker) is handed back by the node that takes the claims over, and
    that node claims it again at once.  It waited for the 5 s backstop:
    the hand-back's hint wakes other nodes only."""
    service.route("POST", "/hold", lambda req: (req.wait_or_gone(60),
                                               (200, {}))[1])
    tmpl = {k: v.replace("@SVC@", service.url)
            for k, v in HELD_AND_QUICK.items()}
    cfg = {"scheduler.lease": "%dms" % int(LEASE_S * 1000),
           "log.level": "info"}
    victim = taskerd(templates=tmpl, config=cfg, workers=1)
    vid = victim.config["node_id"]
    victim.create_task("held", {}, namespace="it")
    service.wait_requests("/hold", 1, timeout=10)
    quick = victim.create_task("quick", {}, namespace="it")["task_id"]
    harness.wait_until(lambda: pg.scalar(
        victim.db, "select status || ' ' || coalesce(lease_owner, '') "
        "from steps where name = 'q'") == "enqueued " + vid, 10,
        interval=0.02, message="the quick step queued on the victim")
    survivor = taskerd(templates=tmpl, config=cfg, workers=2, db=victim.db)
    victim.kill()
    handed = harness.wait_until(lambda: survivor.log_lines(
        r"claim of a lost node taken over, handed back.*step=q\b"),
        4 * LEASE_S, interval=0.02, message="the queued claim handed back")
    back = time.monotonic()
    survivor.wait_task(quick, timeout=10)
    took = time.monotonic() - back
    assert took < 1.0, "the handed-back step ran %.1f s later (%s)" % (
        took, handed)


@pytest.fixture
def crash_pg():
    # synchronous_commit on: a crash must not lose what taskerd was told
    # is committed (off, as the shared cluster runs, it may).
    with running_cluster(synchronous_commit="on", fsync="off") as cluster:
        yield cluster


@pytest.fixture
def crash_taskerd(crash_pg, request):
    with taskerd_factory(crash_pg, request) as factory:
        yield factory


@pytest.mark.parametrize("down_s", [0, 2.5], ids=["restart", "down-2.5s"])
def test_postgres_crash_restart_mid_load(crash_taskerd, crash_pg, service,
                                         down_s):
    """`pg_ctl restart -m immediate`, and an immediate stop with the server
    down longer than the lease before it starts again (then both nodes'
    leases have run out by the database's clock when it returns)."""
    pg = crash_pg
    slow_service(service)
    nodes = start_nodes(crash_taskerd, service)
    db = nodes[0].db
    load = Load(lambda: nodes).start()
    try:
        time.sleep(2)
        harness.wait_until(lambda: int(pg.scalar(db, "select count(*) from "
                                                 "steps where status = "
                                                 "'in_progress'")) >= 2,
                           15, interval=0.05, message="steps in progress")
        crash_at = time.monotonic()
        up_at = pg.restart_immediate(down_s)
        # Work resumes without anyone's help: tasks created now complete.
        time.sleep(3)
    finally:
        created = load.stop()
    assert all(t.running for t in nodes), [t.log_tail(20) for t in nodes]
    rows = wait_drained(pg, db, nodes, 60)
    by_id = {r["id"]: r["status"] for r in rows}
    # None lost: each task the API created exists and completed, and so did
    # any task whose creation committed while its answer was lost.
    assert set(created) <= set(by_id), set(created) - set(by_id)
    assert set(by_id.values()) == {"complete"}, by_id
    after = [a for a in load.answers if a["at"] > up_at + 1]
    assert any(a["status"] == 201 for a in after), after

    check_history(pg, db, len(by_id) * len(STEPS))
    bad = harness.call_overlaps(service_calls(service))
    assert not bad, "\n".join(bad[:10])

    # While the database was down, creation was refused honestly: a 503
    # with Retry-After (when a POST happened to meet the outage).
    during = [a for a in load.answers if a["done"] >= crash_at and
              a["at"] <= up_at and a["status"] != 201]
    for a in during:
        assert a["status"] == 503 and a.get("retry_after"), a
        harness.assert_json_error(harness.Response(
            a["status"], a["body"], {"Content-Type": a["ctype"]}), 503)
    print("outage %.2f s, %d creations refused during it (%s), %d tasks; "
          "claims taken over %d, stale outcomes %d" % (
              up_at - crash_at, len(during),
              sorted({(a["status"], a.get("retry_after")) for a in during}),
              len(by_id), sum(len(t.log_lines("taken over")) for t in nodes),
              sum(len(t.log_lines("stale outcome")) for t in nodes)))


def cut_off(pg, role):
    """The database refuses role and drops its sessions: its node is cut
    off (a partition between that node and PostgreSQL)."""
    pg.execute("postgres", "ALTER ROLE %s NOLOGIN" % role)
    pg.execute("postgres", "SELECT pg_terminate_backend(pid) FROM "
               "pg_stat_activity WHERE usename = '%s'" % role)


def start_to_cut_off(taskerd, pg, service, prefix):
    """A node alone on a new database, logging in as a role of its own
    (made here, so that cut_off can refuse it), that has created task
    `long`, so the step is surely its own.  Returns (db, role, node, task
    id, templates, config): a second node on db uses the same templates
    and config."""
    tmpl = {"long.yaml": PARTITION.replace("@SVC@", service.url)}
    cfg = {"scheduler.lease": "%dms" % int(LEASE_S * 1000),
           "log.level": "info"}
    role = "%s_%s" % (prefix, os.urandom(4).hex())
    db = pg.createdb()
    pg.execute("postgres", "CREATE ROLE %s SUPERUSER LOGIN" % role)
    node = taskerd(templates=tmpl, workers=2, db=db, config=dict(cfg, **{
        "database.dsn": "%s user=%s" % (pg.dsn(db).replace(
            "user=postgres", ""), role)}))
    tid = node.create_task("long", {}, namespace="it")["task_id"]
    return db, role, node, tid, tmpl, cfg


def wait_marked(pg, db):
    """Until the running step's 'in_progress' has committed (written once
    it has run 100 ms).  A node cut off before that leaves the claim
    'enqueued', which the takeover hands back as never started: no attempt
    of the cut-off node's in the audit trail."""
    harness.wait_until(lambda: pg.scalar(
        db, "select status from steps where name = 'long_call'")
        == "in_progress", 10, interval=0.02,
        message="the step's start to be written")


def test_partitioned_node_outcome_is_fenced(taskerd, service, pg):
    """A node cut off from the database finishes a step meanwhile; another
    node takes the claim over and runs the step again.  When the first
    node gets through again, its outcome is stale: discarded, never
    applied (the step's results are the second attempt's)."""
    calls = []
    cut_done = threading.Event()

    def answer(req):
        calls.append(req)
        n = len(calls)
        if n == 1:
            # The first call answers only once its node is cut off, so
            # that its outcome cannot commit before the cut (the bound
            # only keeps a failed test from hanging).
            cut_done.wait(20)
        return 200, {"call": n}
    service.route("POST", "/long_call", answer)
    db, role, cut, tid, tmpl, cfg = start_to_cut_off(taskerd, pg, service,
                                                     "fence")
    try:
        service.wait_requests("/long_call", 1, timeout=10)
        wait_marked(pg, db)
        other = taskerd(templates=tmpl, workers=2, db=db, config=cfg)
        cut_off(pg, role)
        cut_done.set()
        task = other.wait_task(tid, timeout=6 * LEASE_S)
    finally:
        cut_done.set()
        pg.execute("postgres", "ALTER ROLE %s LOGIN" % role)
    assert task["status"] == "complete", task
    step = harness.steps_by_name(task)["long_call"]
    assert step["results"] == {"call": 2}, step
    # The cut-off node's call had ended before the other one began.
    assert calls[0].t_end is not None and calls[0].t_end <= calls[1].t, \
        (calls[0].t, calls[0].t_end, calls[1].t)
    # Back in touch, the first node offers its outcome: fenced off, it is
    # discarded, not applied over the second attempt's.
    def offered():
        if cut.log_lines("stale outcome discarded"):
            return True
        n = pg.scalar(db, "select count(*) from step_transitions where "
                      "metadata ? 'outcome'")
        return int(n) > 2
    harness.wait_until(offered, 8 * LEASE_S, interval=0.1,
                       message="the cut-off node to offer its outcome")
    hist = check_history(pg, db, 1)
    atts = list(hist.values())[0]["attempts"]
    assert atts[1]["code"] == "node_lost" and atts[2]["to"] == "complete", \
        atts
    assert harness.steps_by_name(other.task(tid))["long_call"]["results"] \
        == {"call": 2}
    assert cut.log_lines("stale outcome discarded"), cut.log_tail(30)


def test_partitioned_node_never_runs_a_step_twice(taskerd, service, pg):
    """A node that loses the database (and so its lease) while a step runs
    must not go on running it once another node can have taken it over: the
    service would see the same step twice at once.  The node is cut off by
    the database refusing its role (NOLOGIN) and losing its backends; the
    step takes longer than the takeover."""
    call_s = 4 * LEASE_S
    slow_service(service, seconds=call_s, steps=("long_call",))
    db, role, cut, tid, tmpl, cfg = start_to_cut_off(taskerd, pg, service,
                                                     "part")
    first = service.wait_requests("/long_call", 1, timeout=10)[0]
    wait_marked(pg, db)
    other = taskerd(templates=tmpl, workers=2, db=db, config=cfg)
    cut_off(pg, role)
    try:
        # The other node takes the claim over and runs the step again.
        harness.wait_until(lambda: other.log_lines(
            "claim of a lost node taken over"), 4 * LEASE_S, interval=0.1,
            message="the other node to take the claim over")
        task = other.wait_task(tid, timeout=3 * call_s)
    finally:
        pg.execute("postgres", "ALTER ROLE %s LOGIN" % role)
    assert task["status"] == "complete", task
    check_history(pg, db, 1)
    calls = service_calls(service)
    assert len(calls) >= 2, calls
    bad = harness.call_overlaps(calls)
    assert not bad, "\n".join(bad) + "\n(the cut-off node's call %s: its " \
        "worker was %s)" % (first, "stopped after %.1f s" % (
            first.t_gone - first.t) if first.t_gone else "never stopped")
