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
    handler_config: { sleep_ms: 4000 }
"""


def test_lost_claim_is_handed_back_held_one_is_not(taskerd, pg):
    t = taskerd(templates={"pair.yaml": PAIR, "long.yaml": LONG}, workers=1,
                config={"scheduler": {"lease": "2s"}})
    node = t.config["node_id"]
    pair = t.create_task("pair", {}, namespace=NS)["task_id"]
    assert t.wait_task(pair)["status"] == "complete"
    long_ = t.create_task("long", {}, namespace=NS)["task_id"]
    harness.wait_until(lambda: any(w["state"] == "busy" for w in t.workers()),
                       10, message="the long step running")

    pg.execute(t.db, """
        -- A claim this node holds (a worker runs it), last written long ago.
        UPDATE steps SET updated_at = now() - interval '1 hour'
        WHERE task_id = %(long)d;
        -- What a lost answer leaves: the child claimed for this node.
        UPDATE tasks SET status = 'in_progress', completed_at = NULL
        WHERE id = %(pair)d;
        UPDATE steps SET status = 'enqueued', lease_owner = '%(node)s',
            lease_token = nextval('step_lease_tokens'), attempts = 0,
            results = NULL, started_at = NULL, completed_at = NULL,
            updated_at = now() - interval '1 hour'
        WHERE task_id = %(pair)d AND name = 'second';
        DELETE FROM step_transitions WHERE task_id = %(pair)d
            AND step_id = (SELECT id FROM steps WHERE task_id = %(pair)d
                           AND name = 'second');
        DELETE FROM task_transitions WHERE task_id = %(pair)d
            AND to_state = 'complete';
    """ % {"long": long_, "pair": pair, "node": node})

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
