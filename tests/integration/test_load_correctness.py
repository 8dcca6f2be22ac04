"""Correctness under load: a scaled-down `chain` and `diamond` of the
benchmark (tests/bench/run), created concurrently through the API.

Whatever batching the scheduler does, the durable history must show:
  - every task complete;
  - every step run exactly once: attempts == 1, one transition into
    in_progress and exactly one in_progress -> complete;
  - for every edge, the child's first in_progress transition comes after
    the parent's complete transition, both by created_at and by id.
"""

import json
import threading
import time

import harness

CHAIN_W, CHAIN_K = 100, 5
DIAMOND_W = 50

CHAIN = "name: chain\nnamespace_name: load\nversion: 1.0.0\nstep_templates:\n" + "".join(
    "  - name: s%d\n    handler: noop\n%s" % (
        i, "    depends_on_step: s%d\n" % (i - 1) if i > 1 else "")
    for i in range(1, CHAIN_K + 1))

DIAMOND = """\
name: diamond
namespace_name: load
version: 1.0.0
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
  - name: c
    handler: noop
    depends_on_step: a
  - name: d
    handler: noop
    depends_on_steps: [b, c]
  - name: e
    handler: noop
    depends_on_step: d
"""


def create_concurrently(t, names, clients=8):
    """POST /v1/tasks once per entry of names from `clients` threads, each
    on its own keep-alive connection.  Returns the created task ids."""
    import http.client
    lock = threading.Lock()
    todo = list(names)
    ids, errors = [], []

    def run():
        conn = http.client.HTTPConnection(t.host, t.port, timeout=20)
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    name = todo.pop()
                body = json.dumps({"name": name, "namespace": "load",
                                   "context": {"n": len(todo)}})
                conn.request("POST", "/v1/tasks", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                with lock:
                    if r.status != 201:
                        errors.append((r.status, data[:300]))
                    else:
                        ids.append(int(json.loads(data)["task_id"]))
        except Exception as e:      # reported by the main thread
            with lock:
                errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, "POST /v1/tasks failed: %r" % errors[:3]
    assert not any(th.is_alive() for th in threads), "a client thread hung"
    return ids


def test_chain_and_diamond_under_load(taskerd, pg):
    t = taskerd(templates={"chain.yaml": CHAIN, "diamond.yaml": DIAMOND},
                workers=4, config={"log.level": "info"})
    names = ["chain"] * CHAIN_W + ["diamond"] * DIAMOND_W
    # Interleave the two shapes so they run side by side.
    names = names[::2] + names[1::2]
    ids = create_concurrently(t, names)
    assert len(ids) == CHAIN_W + DIAMOND_W
    total = len(ids)

    def all_done():
        assert t.running, "taskerd exited:\n" + t.log_tail(40)
        row = pg.query(t.db, "SELECT count(*) FILTER (WHERE status = 'complete'),"
                       " count(*) FILTER (WHERE status IN ('error', 'cancelled'))"
                       " FROM tasks")[0]
        done, bad = int(row[0]), int(row[1])
        assert bad == 0, "tasks ended in error/cancelled: %r" % pg.json(
            t.db, "SELECT id, status FROM tasks WHERE status <> 'complete' LIMIT 5")
        return done == total
    harness.wait_until(all_done, 30, interval=0.2,
                       message="%d tasks complete" % total)

    # Every task complete, with the expected number of steps.
    tasks = pg.json(t.db, """
        SELECT tp.name, t.status, count(s.id) AS steps
          FROM tasks t JOIN templates tp ON tp.id = t.template_id
          JOIN steps s ON s.task_id = t.id
         GROUP BY t.id, tp.name, t.status""")
    assert len(tasks) == total
    assert {r["status"] for r in tasks} == {"complete"}
    assert sum(r["name"] == "chain" for r in tasks) == CHAIN_W
    assert sum(r["name"] == "diamond" for r in tasks) == DIAMOND_W
    assert all(r["steps"] == 5 for r in tasks), tasks[:3]

    # Every step exactly one successful attempt.
    bad_steps = pg.json(t.db, """
        SELECT s.id, s.task_id, s.name, s.status, s.attempts,
               count(*) FILTER (WHERE st.to_state = 'in_progress') AS starts,
               count(*) FILTER (WHERE st.from_state = 'in_progress'
                                  AND st.to_state = 'complete') AS completions,
               count(*) FILTER (WHERE st.to_state = 'complete') AS to_complete
          FROM steps s LEFT JOIN step_transitions st ON st.step_id = s.id
         GROUP BY s.id
        HAVING s.status <> 'complete' OR s.attempts <> 1
            OR count(*) FILTER (WHERE st.to_state = 'in_progress') <> 1
            OR count(*) FILTER (WHERE st.from_state = 'in_progress'
                                  AND st.to_state = 'complete') <> 1
            OR count(*) FILTER (WHERE st.to_state = 'complete') <> 1
         LIMIT 10""")
    assert bad_steps == [], "steps without exactly one successful attempt: %r" % bad_steps
    assert int(pg.scalar(t.db, "SELECT count(*) FROM steps")) == 5 * total

    # Every edge: the child starts after its parent's completion.
    edges = pg.json(t.db, """
        WITH tr AS (
          SELECT step_id, to_state, min(created_at) AS at, min(id) AS tid
            FROM step_transitions
           WHERE to_state IN ('complete', 'in_progress')
           GROUP BY step_id, to_state)
        SELECT e.task_id, e.from_step_id, e.to_step_id,
               p.at AS parent_complete_at, p.tid AS parent_tid,
               c.at AS child_start_at, c.tid AS child_tid
          FROM step_edges e
          LEFT JOIN tr p ON p.step_id = e.from_step_id AND p.to_state = 'complete'
          LEFT JOIN tr c ON c.step_id = e.to_step_id AND c.to_state = 'in_progress'""")
    expected_edges = CHAIN_W * (CHAIN_K - 1) + DIAMOND_W * 5
    assert len(edges) == expected_edges, (len(edges), expected_edges)
    wrong = [e for e in edges
             if e["parent_tid"] is None or e["child_tid"] is None
             or not e["child_tid"] > e["parent_tid"]
             or not e["child_start_at"] > e["parent_complete_at"]]
    assert wrong == [], "%d edges out of order, e.g. %r" % (len(wrong), wrong[:3])
