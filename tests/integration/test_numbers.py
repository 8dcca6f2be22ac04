"""Numbers come out as they went in.

A context's 19.99 is stored, answered by the API and sent to services as
19.99 - not as 19.989999999999998, the same double written with 17 digits,
which a service that reads decimals exactly takes for another amount.  The
same for the results a service answers.
"""

import json
import re
import urllib.request

import harness

TEMPLATE = """\
name: charge
namespace_name: numbers
version: 1.0.0
step_templates:
  - name: charge
    handler: http
    handler_config:
      method: POST
      url: "%s/charge"
      body:
        amount: "{{context.amount}}"
        items: "{{context.items}}"
        note: "total {{context.amount}}"
"""


def raw_get(t, path):
    with urllib.request.urlopen(t.url + path, timeout=10) as r:
        return r.read().decode()


def test_reals_keep_their_digits(taskerd, service):
    service.route("POST", "/charge", status=200,
                  body={"charged": 19.99, "fee": 0.3})
    t = taskerd(templates={"charge.yaml": TEMPLATE % service.url})
    body = ('{"name": "charge", "namespace": "numbers", "context": '
            '{"amount": 19.99, "items": [0.1, 2.5, 1.0, 100.0]}}')
    req = urllib.request.Request(t.url + "/v1/tasks", data=body.encode(),
                                 headers={"Content-Type":
                                          "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        created = r.read().decode()
    assert '"amount":19.99' in created, created
    tid = json.loads(created)["task_id"]
    assert t.wait_task(tid)["status"] == "complete"

    # What the service was sent.
    (call,) = service.requests_for("/charge")
    sent = call.body.decode()
    assert '"amount":19.99' in sent, sent
    assert '"items":[0.1,2.5,1.0,100.0]' in sent, sent
    assert '"note":"total 19.99"' in sent, sent

    # What the API answers (the database's own text), and the database
    # holds.
    shown = raw_get(t, "/v1/tasks/%d" % tid)
    assert re.search(r'"amount": ?19.99[,}]', shown), shown
    assert re.search(r'"charged": ?19.99[,}]', shown), shown
    assert re.search(r'"fee": ?0.3[,}]', shown), shown
    assert "19.989999" not in shown and "0.29999" not in shown, shown
    stored = t.pg.scalar(t.db, "SELECT context::text FROM tasks WHERE id = %d"
                         % tid)
    assert re.search(r'"amount": ?19.99[,}]', stored), stored


BIG = """\
name: big
namespace_name: numbers
version: 1.0.0
routes:
  results:
    path: "/big/{task_id}"
    body: { n: "{{context.n}}", m: "{{steps.a.results.m}}", id: "{{task.id}}" }
step_templates:
  - name: a
    handler: http
    handler_config:
      method: POST
      url: "%s/a"
      body: { n: "{{context.n}}" }
  - name: b
    handler: http
    depends_on_step: a
    handler_config:
      method: POST
      url: "%s/b"
      body: { m: "{{steps.a.results.m}}", n: "{{context.n}}" }
"""


def test_reals_of_2_63_and_more_reach_the_steps(taskerd, service):
    """PostgreSQL prints a jsonb 1e19 as 10000000000000000000, an integer
    too big for jansson.  It is read back as the real it was: the steps
    get the context and the results they were given (they used to run
    with an empty context, and without their parents' results), the
    template's results route renders them, and the operator's tool shows
    the task."""
    from test_ctl import ctl_json
    service.route("POST", "/a", status=200, body={"m": -2e19})
    service.route("POST", "/b", status=200, body={"ok": True})
    t = taskerd(templates={"big.yaml": BIG % (service.url, service.url)})
    body = ('{"name": "big", "namespace": "numbers", "context": '
            '{"n": 1e19, "small": 3}}')
    r = t.request("POST", "/v1/tasks", data=body.encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    tid = r.body["task_id"]
    assert t.wait_task(tid)["status"] == "complete"
    (a,) = service.requests_for("/a")
    (b,) = service.requests_for("/b")
    assert a.json == {"n": 1e19}, a.body
    assert b.json == {"m": -2e19, "n": 1e19}, b.body
    stored = t.pg.scalar(t.db, "SELECT context::text FROM tasks WHERE id = %d"
                         % tid)
    assert "10000000000000000000" in stored, stored
    r = t.get("/big/%d" % tid)
    assert r.status == 200 and r.body == {"n": 1e19, "m": -2e19,
                                          "id": tid}, r.body
    shown = ctl_json(t, "task", "show", tid)
    assert shown["context"] == {"n": 1e19, "small": 3}, shown
    # The API writes it as a real: PostgreSQL's integer text is refused by
    # strict clients (jansson, int64 decoders).  (Python reads an integer
    # as an int, a real as a float.)
    for path, find in (
            ("/v1/tasks/%d" % tid, lambda b: b["context"]["n"]),
            ("/v1/tasks?limit=5", lambda b: b["tasks"][0]["context"]["n"]),
            ("/v1/tasks/%d/steps/a" % tid, lambda b: b["results"]["m"]),
            ("/big/%d" % tid, lambda b: b["n"])):
        with urllib.request.urlopen(t.url + path, timeout=10) as f:
            body = json.loads(f.read())
        assert isinstance(find(body), float), (path, body)


def test_integers_beyond_64_bits_are_refused_by_name(taskerd):
    """An integer past 64 bits is valid JSON that taskerd cannot hold
    exactly: it is refused as that, saying where and what to send instead
    (it was "malformed JSON"), through /v1 and a template's route, and no
    task is made.  A real of that size is taken (the test above)."""
    big = BIG.replace("routes:\n", "routes:\n  create: { path: /big }\n")
    t = taskerd(templates={"big.yaml": big % ("http://127.0.0.1:9",
                                              "http://127.0.0.1:9")})
    for n in ("18446744073709551615", "-9223372036854775809"):
        body = ('{"name": "big", "namespace": "numbers",\n "context": '
                '{"n": %s}}' % n)
        r = t.request("POST", "/v1/tasks", data=body.encode(),
                      headers={"Content-Type": "application/json"})
        err = harness.assert_json_error(r, 400, "invalid_request")
        assert "line 2" in err["message"], err
        assert "64 bits" in err["message"] and "string" in err["message"], err
        r = t.request("POST", "/big", data=('{"n": %s}' % n).encode(),
                      headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.body["success"] is False, r.body
        assert r.body["code"] == "invalid_request", r.body
        assert "64 bits" in r.body["details"]["reason"], r.body
    # The largest integers that fit are taken.
    r = t.request("POST", "/v1/tasks", data=b'{"name": "big", "namespace": '
                  b'"numbers", "context": {"n": 9223372036854775807}}',
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    assert r.body["context"] == {"n": 9223372036854775807}, r.body
    assert t.pg.scalar(t.db, "SELECT count(*) FROM tasks") == "1"
