"""A claim this node holds in the database but not in memory is recovered.

A transaction that claims steps (a batch of outcomes claiming the
children, the general claim, a creation) can commit and then lose its
answer with the connection.  The steps are then 'enqueued' for this node,
under lease tokens it never learned: no worker runs them, and no other node
takes them over while this node's lease is renewed.  The sweeper finds such
claims (older than any job in flight, tokens this node does not hold) and
hands them back, so the step runs; claims the node does hold are left alone
however old they are.

The lost answer is reproduced by writing the state it leaves: a completed
parent whose child is 'enqueued' for this node under an unknown token.

A node killed outright leaves its claims the same two ways: steps queued
ahead for its workers ('enqueued') are handed back when it starts again,
costing no attempt (they never ran: a step that fails for good at its
first error must not end in error for a crash); the ones its workers were
running lose their attempt (node_restarted) and run again, the attempt
granted back (their retry_limit grows by one), as for a lost node.
"""

import harness

NS = "orphans"

PAIR = """\
name: pair
namespace_name: orphans
version: 1.0.0
step_templates:
  - name: first
    handler: noop
  - name: second
    handler: noop
    depends_on_step: first
"""

LONG = """\
name: long
namespace_name: orphans
version: 1.0.0
step_templates:
  - name: wait
    handler: noop
    default_retry_limit: 1
    handler_config: { sleep_ms: 4000 }
"""


def lose_answer(pg, t, task_id, status):
    """Write what a lost answer leaves: the completed task's second step
    claimed for t's node (status 'enqueued', or 'in_progress' as a sweep
    whose answer was lost leaves another node's claim), long ago, under a
    token the node never learned."""
    pg.execute(t.db, """
        UPDATE tasks SET status = 'in_progress', completed_at = NULL
        WHERE id = %(task)d;
        UPDATE steps SET status = '%(status)s', lease_owner = '%(node)s',
            lease_token = nextval('step_lease_tokens'), attempts = 0,
            results = NULL, started_at = NULL, completed_at = NULL,
            updated_at = now() - interval '1 hour'
        WHERE task_id = %(task)d AND name = 'second';
        DELETE FROM step_transitions WHERE task_id = %(task)d
            AND step_id = (SELECT id FROM steps WHERE task_id = %(task)d
                           AND name = 'second');
        DELETE FROM task_transitions WHERE task_id = %(task)d
            AND to_state = 'complete';
    """ % {"task": task_id, "status": status, "node": t.config["node_id"]})


def test_lost_claim_is_handed_back_held_one_is_not(taskerd, pg):
    t = taskerd(templates={"pair.yaml": PAIR, "long.yaml": LONG}, workers=1,
                config={"scheduler": {"lease": "2s"}})
    pair = t.create_task("pair", {}, namespace=NS)["task_id"]
    assert t.wait_task(pair)["status"] == "complete"
    long_ = t.create_task("long", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy" for w in t.workers()),
                       10, message="the long step running")

    # A claim this node holds (a worker runs it), last written long ago.
    pg.execute(t.db, "UPDATE steps SET updated_at = now() - interval "
               "'1 hour' WHERE task_id = %d" % long_)
    lose_answer(pg, t, pair, "enqueued")

    done = t.wait_task(pair, timeout=20)
    assert done["status"] == "complete", done
    second = [s for s in done["steps"] if s["name"] == "second"][0]
    assert second["attempts"] == 1, second
    lines = t.log_lines("claim this node had lost track of")
    assert len(lines) == 1 and "handed back" in lines[0] and \
        "step=second" in lines[0], lines

    # The held claim ran to its end, once.
    done = t.wait_task(long_, timeout=20)
    assert done["status"] == "complete", done
    assert done["steps"][0]["attempts"] == 1, done["steps"]
    assert "claim_lost" not in t.log()


def test_lost_running_claim_counts_an_attempt(taskerd, pg):
    """An 'in_progress' claim the node does not know (a takeover whose
    answer was lost: the other node may have run it) is not handed back
    as new: its attempt ends (claim_lost) and the step is retried."""
    t = taskerd(templates={"pair.yaml": PAIR},
                config={"scheduler": {"lease": "2s"}})
    pair = t.create_task("pair", {}, namespace=NS)["task_id"]
    assert t.wait_task(pair)["status"] == "complete"
    lose_answer(pg, t, pair, "in_progress")
    done = t.wait_task(pair, timeout=20)
    assert done["status"] == "complete", done
    second = [s for s in done["steps"] if s["name"] == "second"][0]
    assert second["attempts"] == 2, second
    lines = t.log_lines("claim this node had lost track of")
    assert len(lines) == 1 and "attempt abandoned" in lines[0], lines
    tr = pg.json(t.db, "select to_state, metadata->'error'->>'code' as code"
                 " from step_transitions where task_id = %d and step_id = "
                 "(select id from steps where task_id = %d and name = "
                 "'second') order by id" % (pair, pair))
    assert [x["code"] for x in tr if x["to_state"] ==
            "waiting_for_retry"] == ["claim_lost"], tr


ONCE = """\
name: once
namespace_name: orphans
version: 1.0.0
step_templates:
  - name: only
    handler: noop
    default_retryable: false
"""


def test_restart_hands_back_queued_claims(taskerd, pg):
    # (6 s: the step must outlast five creations and the waits below,
    # under a sanitizer on a loaded machine too.)
    t = taskerd(templates={"long.yaml": LONG.replace("4000", "6000"),
                           "once.yaml": ONCE}, workers=1)
    long_ = t.create_task("long", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy" for w in t.workers()),
                       10, message="the long step running")
    once = [t.create_task("once", {}, namespace=NS)["task_id"]
            for _ in range(5)]
    node = t.config["node_id"]

    def queued():
        return int(pg.scalar(t.db, "select count(*) from steps where "
                             "status = 'enqueued' and lease_owner = '%s'"
                             % node))
    harness.wait_until(lambda: queued() == 5, 10,
                       message="the five steps queued for the busy worker")
    # The running step's start is written 100 ms in: its claim must read
    # 'in_progress' before the kill (not 'enqueued', handed back unrun).
    harness.wait_until(lambda: pg.scalar(
        t.db, "select status from steps where task_id = %d" % long_)
        == "in_progress", 10, interval=0.02,
        message="the running step's start to be written")
    t.kill()
    t.start()
    for tid in once:
        done = t.wait_task(tid, timeout=20)
        assert done["status"] == "complete", done
        assert done["steps"][0]["attempts"] == 1, done["steps"]
    done = t.wait_task(long_, timeout=30)
    assert done["status"] == "complete", done
    # One attempt allowed, two made: the crash's was granted back.
    assert (done["steps"][0]["attempts"], done["steps"][0]["retry_limit"]) \
        == (2, 2), done["steps"]
    assert done["steps"][0]["last_error"]["code"] == "node_restarted", done
    lines = t.log_lines("claim of this node before it restarted")
    assert sum("handed back" in x for x in lines) == 5, lines
    assert sum("attempt abandoned" in x for x in lines) == 1, lines


def test_a_killed_nodes_batch_that_commits_after_its_restart(taskerd, pg):
    """A batch the server runs on after its node was killed (it waited for
    a lock) commits after the restart's sweep passed over its rows: the
    child it claimed is this node's under a token the new process never
    saw.  It is handed back at the next sweep, not after the 30 s grace
    kept for the node's own jobs in flight."""
    steps = PAIR.replace("    handler: noop\n  - name: second",
                         "    handler: noop\n    handler_config: "
                         "{ sleep_ms: 1000 }\n  - name: second", 1)
    t = taskerd(templates={"pair.yaml": steps})
    tid = t.create_task("pair", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: pg.scalar(
        t.db, "select status from steps where task_id = %d and name = "
        "'first'" % tid) == "in_progress", 10, message="first running")
    # The child's row held, so the batch with first's outcome waits.
    locker = pg.psql_background(
        t.db, "BEGIN; SELECT 1 FROM steps WHERE task_id = %d AND name = "
        "'second' FOR UPDATE; SELECT pg_sleep(4); COMMIT;" % tid)
    harness.wait_until(lambda: int(pg.scalar(
        t.db, "select count(*) from pg_stat_activity where wait_event_type "
        "= 'Lock' and datname = current_database()")) >= 1, 10,
        message="the outcome batch waiting for the lock")
    t.kill()
    t.start()
    locker.wait(30)
    done = t.wait_task(tid, timeout=15)
    assert done["status"] == "complete", done
    assert t.log_lines("claim this node had lost track of"), t.log_tail(30)
