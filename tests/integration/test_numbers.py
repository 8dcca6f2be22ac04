"""Numbers come out as they went in.

A context's 19.99 is stored, answered by the API and sent to services as
19.99 - not as 19.989999999999998, the same double written with 17 digits,
which a service that reads decimals exactly takes for another amount.  The
same for the results a service answers.
"""

import json
import re
import urllib.request

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
