"""A worker that cannot start is respawned with a growing delay, reported,
and never in a tight loop; the supervisor keeps serving meanwhile."""

import re
import time

import pytest


def test_worker_that_cannot_start_is_not_respawned_in_a_loop(taskerd):
    # /bin/false exits at once without the protocol's HELLO: exactly what a
    # broken install or a bad plugin path looks like to the supervisor.
    t = taskerd(config={"workers": {"path": "/bin/false"}}, workers=1,
                start=False)
    with pytest.raises(AssertionError, match="not ready"):
        t.start(ready_timeout=3.0)
    time.sleep(1.0)

    assert t.proc.poll() is None, "the supervisor died:\n" + t.log_tail(40)
    assert t.get("/health/live").status == 200
    ready = t.get("/health/ready")
    assert ready.status == 503
    assert ready.body["workers_up"] == 0

    delays = [int(m) for m in re.findall(
        r'msg="worker cannot start" slot=0 .*retry_in_ms=(\d+)', t.log())]
    # About four seconds allow 100+200+400+800+1600+... ms of delays: a
    # handful of attempts, each waiting longer than the last.
    assert 3 <= len(delays) <= 8, delays
    assert delays == sorted(delays) and len(set(delays)) == len(delays), \
        delays
    assert delays[0] == 100
    # Every start is reported with how the process ended.
    assert len(t.log_lines(r'msg="worker died" pid=\d+ slot=0 exit=1')) \
        >= len(delays)
