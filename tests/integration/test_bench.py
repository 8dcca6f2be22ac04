"""`make bench` keeps working: tests/bench/run, scaled down, prints its JSON
line per scenario, and BENCH_REPEAT prints medians.

The figures themselves are not judged here (CI machines differ); what is
checked is what a reader of the bench relies on: every scenario reports,
every workflow completed, no edge ran out of order, and the numbers are
numbers.
"""

import json
import os
import subprocess

import harness

BENCH = harness.REPO / "tests" / "bench"


def run_bench(**env):
    built = subprocess.run(["make", "-s", "tests/bench/loadgen",
                            "tests/bench/httpd"], cwd=str(harness.REPO),
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    full = dict(os.environ, BENCH_W="30", BENCH_CREATE_S="1",
                BENCH_PGLIMIT_S="1", BENCH_CLIENTS="4", **env)
    p = subprocess.run([str(BENCH / "run")], env=full, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, "bench exited %d\n%s" % (p.returncode,
                                                       p.stderr[-3000:])
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return {(x["scenario"], x.get("workload")): x for x in lines}, p.stderr


def test_bench_prints_every_scenario():
    out, err = run_bench()
    assert set(out) == {("chain", None), ("dispatch_latency", "chain"),
                        ("diamond", None), ("dispatch_latency", "diamond"),
                        ("http", None), ("dispatch_latency", "http"),
                        ("create", None), ("resources", None),
                        ("pg_limit", None)}, sorted(out)
    for name in ("chain", "diamond", "http"):
        r = out[(name, None)]
        assert r["workflows"] == 30 and r["completed"] == 30, r
        assert r["failed"] == 0 and r["create_errors"] == 0, r
        assert r["steps_per_s"] > 0 and r["postgres_cpu_s"] >= 0, r
        # A step writes its rows and their index entries: some WAL, but
        # not megabytes.
        assert 500 < r["wal_bytes_per_step"] < 100000, r
        d = out[("dispatch_latency", name)]
        assert d["out_of_order"] == 0 and d["children"] > 0, d
        assert 0 < d["p50_ms"] <= d["p99_ms"] <= d["max_ms"], d
        # Every parent's commit time is known, and its outcome was
        # written before its commit: from there the wait is longer.
        assert d["untimed"] == 0, d
        assert d["from_write_p50_ms"] >= d["p50_ms"], d
    c = out[("create", None)]
    assert c["created"] > 0 and c["errors"] == 0 and c["tasks_per_s"] > 0, c
    r = out[("resources", None)]
    assert r["supervisor_rss_kb"] > 0 and r["worker_rss_kb_max"] > 0, r
    assert out[("pg_limit", None)]["step_lifecycles_per_s"] > 0
    assert err.rstrip().endswith("bench: ok"), err[-2000:]
    assert "bench: taskerd %s, worker %s\n" % (harness.taskerd_bin(),
                                               harness.worker_bin()) in err


def test_bench_repeat_prints_medians(tmp_path):
    explain = tmp_path / "plans"
    out, _ = run_bench(BENCH_REPEAT="2", BENCH_SCENARIOS="chain",
                       BENCH_PG_EXPLAIN=str(explain))
    r = out[("chain", None)]
    assert r["runs"] == 2 and r["completed"] == 30, r
    low, high = r["steps_per_s_range"]
    assert low <= r["steps_per_s"] <= high, r
    # Each run's server log (with its sample of plans) is kept, not
    # overwritten by the next run's.
    logs = [(tmp_path / ("plans.%d" % i)).read_text() for i in (1, 2)]
    for log in logs:
        assert 'parameter "auto_explain.log_analyze" changed' in log, log[-2000:]
    assert logs[0] != logs[1]
    assert not explain.exists()


def test_make_bench_measures_the_programs_the_environment_names(tmp_path):
    """`make bench` runs TASKERD_BIN and TASKERD_WORKER when they are set,
    not always the tree's, so that two builds kept elsewhere can be
    compared run for run; it names them first, and one that is not there
    stops the run before a database is started."""
    def make_bench(**env):
        full = dict(os.environ, BENCH_W="30", BENCH_SCENARIOS="chain", **env)
        return subprocess.run(["make", "-s", "bench"], cwd=str(harness.REPO),
                              env=full, capture_output=True, text=True,
                              timeout=600)

    missing = tmp_path / "missing" / "taskerd"
    p = make_bench(TASKERD_BIN=str(missing))
    assert p.returncode != 0
    assert "bench: setup failed: %s is not built" % missing in p.stderr, \
        p.stderr[-3000:]
    assert "starting PostgreSQL" not in p.stderr, p.stderr[-3000:]

    # The same programs under other names: those names are the ones run.
    other = tmp_path / "other"
    other.mkdir()
    (other / "taskerd").symlink_to(harness.taskerd_bin())
    (other / "taskerd-worker").symlink_to(harness.worker_bin())
    p = make_bench(TASKERD_BIN=str(other / "taskerd"),
                   TASKERD_WORKER=str(other / "taskerd-worker"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "bench: taskerd %s, worker %s\n" % (
        other / "taskerd", other / "taskerd-worker") in p.stderr, p.stderr
    chain = json.loads(p.stdout.splitlines()[0])
    assert chain["scenario"] == "chain" and chain["completed"] == 30, chain
