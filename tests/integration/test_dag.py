"""A 5-step http workflow shaped like the seed's user onboarding:

        a
       / \\
      b   c        (in parallel)
       \\ /
        d
        |
        e

Every step calls its own path of a local service.  The task must complete,
the durable transitions must prove the DAG order, and the service must see
the calls in that order, each with its idempotency key, a correlation id and
a body rendered from the context and the parents' results.
"""

import harness

TEMPLATE = """\
name: five_step
namespace_name: it
version: 1.0.0
description: A; then B and C in parallel; then D; then E
step_templates:
  - name: a
    handler: http
    handler_config:
      method: POST
      url: "@SVC@/a"
      body:
        email: "{{context.email}}"
        age: "{{context.age}}"
  - name: b
    handler: http
    depends_on_step: a
    handler_config:
      method: POST
      url: "@SVC@/b"
      body:
        n: "{{steps.a.results.n}}"
        label: "n={{steps.a.results.n}} for {{context.email}}"
  - name: c
    handler: http
    depends_on_steps: [a]
    handler_config:
      method: POST
      url: "@SVC@/c"
      headers:
        X-Plan: "{{context.profile.plan}}"
      body:
        email: "{{context.email}}"
        profile: "{{context.profile}}"
  - name: d
    handler: http
    depends_on_steps: [b, c]
    handler_config:
      method: PUT
      url: "@SVC@/d"
      body:
        from_b: "{{steps.b.results.n}}"
        from_c: "{{steps.c.results.step}}"
  - name: e
    handler: http
    depends_on_step: d
    handler_config:
      url: "@SVC@/e"
"""

PARENTS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]}
METHODS = {"a": "POST", "b": "POST", "c": "POST", "d": "PUT", "e": "GET"}
CONTEXT = {"email": "ada@example.com", "age": 36,
           "profile": {"plan": "pro", "tags": ["beta", "eu"]}}


def answer(name):
    return {"step": name, "n": "abcde".index(name) + 1}


def start(taskerd, service, branch_delay=0.0):
    for name, method in METHODS.items():
        service.route(method, "/" + name, status=200, body=answer(name),
                      delay=branch_delay if name in ("b", "c") else 0)
    t = taskerd(templates={"five_step.yaml": TEMPLATE.replace("@SVC@", service.url)},
                workers=2)
    task = t.create_task("five_step", CONTEXT, namespace="it")
    return t, task


def test_five_step_dag_completes_in_order(taskerd, service, pg):
    t, created = start(taskerd, service)
    tid = created["task_id"]
    assert isinstance(tid, int)
    assert {s["name"] for s in created["steps"]} == set(PARENTS)

    task = t.wait_task(tid, timeout=30)
    assert task["status"] == "complete", task
    assert task["completed_at"]
    steps = harness.steps_by_name(task)
    assert set(steps) == set(PARENTS)
    for name, step in steps.items():
        assert step["status"] == "complete", step
        assert step["attempts"] == 1, step
        assert step["handler"] == "http"
        assert sorted(step["depends_on"]) == PARENTS[name], step
        assert step["results"] == answer(name), step
        assert step["last_error"] is None, step

    # The graph as stored: one edge per dependency.
    edges = pg.json(t.db, """
        select p.name as parent, c.name as child
          from step_edges e join steps p on p.id = e.from_step_id
                            join steps c on c.id = e.to_step_id
         where e.task_id = %d""" % tid)
    assert sorted((e["parent"], e["child"]) for e in edges) == sorted(
        (p, c) for c, ps in PARENTS.items() for p in ps)

    # The durable history proves the order: no step started before every
    # parent had completed (commit order by id, and by clock_timestamp()).
    rows = harness.step_transitions(pg, t.db, tid)
    first_run, done = {}, {}
    for row in rows:
        if row["to_state"] == "in_progress":
            first_run.setdefault(row["name"], row)
        if row["to_state"] == "complete":
            assert row["name"] not in done, "%s completed twice: %r" % (row["name"], rows)
            done[row["name"]] = row
    assert set(first_run) == set(PARENTS) and set(done) == set(PARENTS), rows
    for child, parents in PARENTS.items():
        for parent in parents:
            started, finished = first_run[child], done[parent]
            assert started["id"] > finished["id"], \
                "%s started (transition %d) before %s completed (%d)" % (
                    child, started["id"], parent, finished["id"])
            assert started["us"] >= finished["us"], (child, parent, rows)

    # What the services saw: a, then b and c, then d, then e; each after the
    # answers it depends on were sent.
    reqs = service.requests
    assert [r.path for r in reqs][0] == "/a"
    assert sorted(r.path for r in reqs[1:3]) == ["/b", "/c"]
    assert [r.path for r in reqs[3:]] == ["/d", "/e"], reqs
    by = {r.path[1:]: r for r in reqs}
    for child, parents in PARENTS.items():
        for parent in parents:
            assert by[child].t >= by[parent].t_end, (child, parent)
    for name, r in by.items():
        assert r.method == METHODS[name], (name, r.method)
        assert r.headers.get("Idempotency-Key") == "%d:%s" % (tid, name), \
            dict(r.headers)
        assert (r.headers.get("X-Correlation-ID") or "").strip(), dict(r.headers)

    # Bodies rendered from the context and parent results, with JSON types
    # kept for whole-string placeholders.
    assert by["a"].json == {"email": "ada@example.com", "age": 36}
    assert by["b"].json == {"n": 1, "label": "n=1 for ada@example.com"}
    assert by["c"].json == {"email": "ada@example.com",
                            "profile": {"plan": "pro", "tags": ["beta", "eu"]}}
    assert by["c"].headers.get("X-Plan") == "pro"
    assert by["d"].json == {"from_b": 2, "from_c": "c"}
    assert by["e"].body == b""


def test_parallel_branches_run_concurrently(taskerd, service):
    """b and c are both ready when a completes; with two workers they run at
    the same time (each answer takes 0.5 s)."""
    t, created = start(taskerd, service, branch_delay=0.5)
    task = t.wait_task(created["task_id"], timeout=30)
    assert task["status"] == "complete", task
    b, c = service.requests_for("/b")[0], service.requests_for("/c")[0]
    assert max(b.t, c.t) < min(b.t_end, c.t_end), \
        "b and c did not overlap: b %.3f-%.3f, c %.3f-%.3f" % (
            b.t, b.t_end, c.t, c.t_end)
