"""The chaos suite in its reduced form (issue 8, acceptance 3).

tests/chaos/run (`make chaos`, 300 s and every fault by default) runs here
for about a minute and a half with six faults, once each: SIGKILLed workers,
a SIGKILLed node started again, `pg_ctl restart -m immediate`,
pg_terminate_backend in a loop, a hung worker and a black-holed service.
Its report must list each fault with a recovery time, and every invariant
must hold (see the runner's docstring for what each one means).
"""

import json
import subprocess
import sys

import harness

CHAOS = harness.REPO / "tests" / "chaos" / "run"
FAULTS = ["kill_workers", "kill_node", "pg_restart", "pg_terminate",
          "hang_worker", "service_blackhole"]
BUDGET_S = 85
INVARIANTS = {"tasks_final", "tasks_complete", "none_lost",
              "no_overlap_audit", "no_overlap_calls", "no_stale_outcome",
              "effects_once", "api_honest", "dead_workers_exit",
              "nodes_alive"}


def test_chaos_reduced():
    harness.require_binaries()
    env = harness.clean_env({"CHAOS_S": str(BUDGET_S),
                             "CHAOS_FAULTS": ",".join(FAULTS),
                             "CHAOS_ONCE": "1", "CHAOS_PAUSE_S": "5",
                             "CHAOS_RATE": "5"})
    r = subprocess.run([sys.executable, str(CHAOS)], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=BUDGET_S + 120)
    lines = r.stdout.strip().splitlines()
    assert lines, "no report on stdout (exit %s):\n%s" % (r.returncode,
                                                        r.stderr[-4000:])
    report = json.loads(lines[-1])
    # The table, for whoever reads the test output.
    print(r.stderr[r.stderr.find("== chaos report"):])
    failed = {k: v for k, v in report.get("invariants", {}).items()
              if not v["ok"]}
    assert r.returncode == 0 and report["ok"], \
        "chaos run failed (exit %s): %s\n%s" % (
            r.returncode, json.dumps(failed, indent=1, default=str)[:4000],
            r.stderr[-4000:])
    assert set(report["invariants"]) == INVARIANTS, report["invariants"]

    # Every fault ran, in order, and its recovery was measured.
    assert [f["fault"] for f in report["faults"]] == FAULTS, report["faults"]
    for f in report["faults"]:
        assert "error" not in (f.get("detail") or {}), f
        assert isinstance(f["recovery_s"], (int, float)), f
    # The faults that end attempts ended some, and those steps ran again.
    by = {f["fault"]: f for f in report["faults"]}
    for name in ("kill_workers", "hang_worker"):
        assert by[name]["attempts_failed"] >= 1, by[name]
        assert isinstance(by[name]["restart_s"], (int, float)), by[name]
    assert by["kill_node"]["detail"]["workers_gone_s"] is not None, by
    tasks = report["tasks"]
    assert tasks["created"] > 0 and tasks["by_status"] == {
        "complete": tasks["in_database"]}, tasks
    assert report["completions"]["ratio"] is not None, report["completions"]
