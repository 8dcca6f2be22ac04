"""Fixtures for the integration tests; the machinery is in harness.py.

pg        (session) a throwaway PostgreSQL cluster, stopped and removed at the
          end even on failure or Ctrl-C.
taskerd   (function) factory: taskerd(templates={...}, config={...},
          workers=2) -> a running harness.Taskerd with a fresh database.
service   (function) a programmable HTTP server playing the microservices.
notify_socket (function) (socket, path): a datagram socket as systemd's
          NOTIFY_SOCKET; see harness.notify_env and notify_messages.
"""

import contextlib
import os
import signal
import socket
import tempfile

import pytest

import harness


@contextlib.contextmanager
def running_cluster(**settings):
    """A throwaway PostgreSQL for a fixture; settings as PgCluster's."""
    cluster = harness.PgCluster(settings=settings or None)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def taskerd_factory(pg, request):
    """A TaskerdFactory on pg; a failed test's directories are kept."""
    factory = harness.TaskerdFactory(pg)
    request.node._taskerd_instances = factory.instances
    try:
        yield factory
        # Whatever a test did, its logs stay parseable.
        for t in factory.instances:
            harness.assert_logfmt(t.log(), t.crash_reports)
    finally:
        factory.cleanup(keep=getattr(request.node, "_taskerd_failed", False))


def pytest_configure(config):
    # A SIGTERM to the test run should clean up like Ctrl-C does (fixture
    # finalizers and atexit), not leave a postmaster and taskerds behind.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        def on_term(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        signal.signal(signal.SIGTERM, on_term)


@pytest.fixture(scope="session")
def pg():
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def taskerd(pg, request):
    with taskerd_factory(pg, request) as factory:
        yield factory


@pytest.fixture
def service():
    svc = harness.Service()
    try:
        yield svc
    finally:
        svc.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    item._taskerd_failed = True
    for t in getattr(item, "_taskerd_instances", []):
        rep.sections.append(("%s log, last 200 lines (kept in %s)" % (t.name, t.logfile),
                             t.log_tail(200) or "(empty)"))


@pytest.fixture
def notify_socket():
    d = tempfile.mkdtemp(prefix="taskerd-notify-")
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.1)
    try:
        yield s, path
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(d)
