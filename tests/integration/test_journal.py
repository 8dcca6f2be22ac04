"""Under systemd, log events go to the journal with their keys as fields.

journald is played by a datagram socket at the journal's well-known path:
taskerd decides by JOURNAL_STREAM (stderr's device:inode) as under systemd,
and libsystemd sends each event there in the journal's native protocol."""

import os
import socket
import threading

import pytest

import harness

JOURNAL = "/run/systemd/journal/socket"

TEMPLATE = """
name: logged
step_templates:
  - name: only
    handler: noop
"""


class FakeJournal:
    """Reads datagrams as journald would - at once, so senders never wait -
    and keeps each entry's fields."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(JOURNAL)
        self.sock.settimeout(0.1)
        self.entries = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            fields = {}
            for line in data.decode(errors="replace").split("\n"):
                if "=" in line:
                    k, _, v = line.partition("=")
                    fields[k] = v
            self.entries.append(fields)

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


@pytest.mark.skipif(os.path.exists(JOURNAL) or os.geteuid() != 0,
                    reason="a real journal is running here, or not root")
def test_events_reach_the_journal_as_fields(taskerd, monkeypatch):
    made = []
    for d in ("/run/systemd", "/run/systemd/journal"):
        if not os.path.isdir(d):
            os.mkdir(d)
            made.append(d)
    journal = FakeJournal()
    try:
        t = taskerd(templates={"logged.yaml": TEMPLATE}, start=False)
        # stderr will be this file: name it as systemd would.
        open(t.logfile, "ab").close()
        st = os.stat(t.logfile)
        base = harness.clean_env
        env = {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}
        monkeypatch.setattr(harness, "clean_env",
                            lambda extra=None: base(dict(env, **(extra or {}))))
        t.start()
        tid = t.create_task("logged", {})["task_id"]
        assert t.wait_task(tid)["status"] == "complete"
        # The datagrams are read on another thread: wait for the start's
        # and the step's.
        harness.wait_until(lambda: (lambda got: any(
            e.get("MESSAGE") == "taskerd started" for e in got) and any(
            e.get("TASK_ID") == str(tid) and e.get("STEP") == "only"
            for e in got))(list(journal.entries)), 10,
            message="the start's and the step's entries in the journal")
        got = list(journal.entries)

        started = [e for e in got if e.get("MESSAGE") == "taskerd started"]
        assert started, got[:5]
        assert started[0]["SYSLOG_IDENTIFIER"] == "taskerd"
        assert started[0]["PRIORITY"] == "6"
        assert started[0]["NODE"].startswith("test-")
        # A worker's line about the step carries the task's ids as fields.
        steps = [e for e in got if e.get("TASK_ID") == str(tid)
                 and e.get("STEP") == "only"]
        assert steps, [e.get("MESSAGE") for e in got]
        assert all("CORRELATION_ID" in e for e in steps)
        # Nothing went to the stderr file meanwhile.
        assert "taskerd started" not in harness.read_text(t.logfile)
    finally:
        journal.close()
        os.unlink(JOURNAL)
        for d in reversed(made):
            os.rmdir(d)
