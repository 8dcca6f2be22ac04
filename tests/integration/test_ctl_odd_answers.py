"""tasker-ctl against answers taskerd does not give but a proxy, a broken
network or another version may: a lost answer to a write, a redirect, an
HTML error page under --json, a malformed step graph; and its own setup
(an empty variable, a long token in the config file, a narrow terminal,
sudo)."""

import json
import os
import socket

import harness

from test_ctl import ctl, ctl_bin, ctl_env, ok, run_on_pty


def dropped(req):
    """The request read, the connection closed with no answer: as a
    server or proxy that died after carrying the request out."""
    req.sock.shutdown(socket.SHUT_RDWR)
    return 200, {}


def test_a_write_whose_answer_is_lost_is_not_called_unreachable(service):
    """Exit 3 says the server was not reached: a script may send again.
    A create, cancel or step action that went out and whose answer was
    lost may have been carried out: exit 1, saying so."""
    service.route("POST", "/v1/tasks", dropped)
    service.route("DELETE", "/v1/tasks/7", dropped)
    service.route("PATCH", "/v1/tasks/7/steps/a", dropped)
    service.route("GET", "/v1/tasks/7", dropped)
    for args, method in ((("task", "create", "ns/x"), "POST"),
                         (("task", "cancel", "7"), "DELETE"),
                         (("step", "retry", "7", "a", "--reason", "r"),
                          "PATCH")):
        r = ctl(*args, url=service.url)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert "sent, but the answer was lost" in r.stderr, r.stderr
        assert r.stderr.startswith("tasker-ctl: %s %s/v1/tasks" %
                                   (method, service.url)), r.stderr
        assert "cannot reach" not in r.stderr, r.stderr
    assert len(service.requests_for("/v1/tasks", "POST")) == 1
    # A read is safe to repeat: exit 3, though the server was reached.
    r = ctl("task", "show", "7", url=service.url)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "no answer from %s/v1/tasks/7, which was reached" % service.url \
        in r.stderr, r.stderr
    # Nothing listening: not reached.
    r = ctl("task", "show", "7", url="http://127.0.0.1:%d" % harness.free_port())
    assert r.returncode == 3 and "cannot reach" in r.stderr, r.stderr


def test_a_redirect_names_its_target(service):
    service.route("GET", "/v1/workers", status=301, body="Moved\n",
                  headers={"Location": "https://api.example/v1/workers"})
    r = ctl("workers", url=service.url)
    assert r.returncode == 1, r
    assert "HTTP 301: redirected to https://api.example/v1/workers" in \
        r.stderr, r.stderr
    assert len(service.requests_for("/v1/workers")) == 1     # not followed


def test_json_output_holds_only_json(service):
    """With --json an error answer goes to stdout for scripts: only when
    it is JSON, or `| jq` breaks on a proxy's HTML page."""
    service.route("GET", "/v1/services", status=502,
                  body="<html><body>Bad Gateway</body></html>\n")
    r = ctl("--json", "services", url=service.url)
    assert r.returncode == 1, r
    assert r.stdout == "", r.stdout
    assert "HTTP 502: <html><body>Bad Gateway" in r.stderr, r.stderr


def test_a_parent_named_many_times_is_drawn_once(service):
    """A step graph where a step names its parent more times than there
    are steps (no taskerd sends it; a proxy or another version might)
    overflowed the tree's memory and aborted."""
    task = {"task_id": 1, "status": "complete", "namespace": "ns",
            "name": "x", "version": "1", "steps": [
                {"name": "a", "status": "complete", "depends_on": []},
                {"name": "b", "status": "complete",
                 "depends_on": ["a"] * 200}]}
    service.route("GET", "/v1/tasks/1", body=task)
    r = ctl("task", "show", "1", url=service.url)
    assert r.returncode == 0, (r.returncode, r.stderr[-500:])
    drawn = [line for line in r.stdout.splitlines()
             if line.lstrip(" │├└─|`-").startswith(("a ", "b "))]
    assert len(drawn) == 2, r.stdout


def test_an_empty_variable_leaves_the_config_file(service, tmp_path):
    service.route("GET", "/v1/workers", body={"workers": []})
    conf = tmp_path / "config"
    token = "t-" + "x" * 3000           # longer than any line buffer
    conf.write_text("url = %s\ntoken = %s\n" % (service.url, token))
    os.chmod(str(conf), 0o600)
    env = {"TASKER_CTL_CONFIG": str(conf), "TASKER_URL": "",
           "TASKER_TOKEN": ""}
    ok(ctl("workers", env=env))
    auth = [r.headers.get("Authorization")
            for r in service.requests_for("/v1/workers")]
    assert auth == ["Bearer " + token], [len(a or "") for a in auth]


def test_watch_fits_a_narrow_terminal(service):
    """The progress line is redrawn with \\r: longer than the terminal, it
    wrapped, and each redraw left a line behind.  Cut to fit, it cuts no
    character in two (the pty's output is decoded strictly)."""
    steps = ["ünïcödé_%d" % i for i in range(3)]
    answers = [{"task_id": 1, "status": status, "steps": [
        {"name": n, "status": step_status} for n in steps]}
        for status, step_status in (("in_progress", "in_progress"),
                                    ("resolved_manually",
                                     "resolved_manually"))]
    seen = []

    def task(req):
        seen.append(1)
        return 200, answers[min(len(seen), 2) - 1]
    service.route("GET", "/v1/tasks/1", task)
    # 65 columns leave "0/3 steps done, running: " and half of the "ü".
    for columns in (65, 30):
        seen.clear()
        argv = [ctl_bin(), "--url", service.url, "task", "watch", "1",
                "--interval", "1"]
        rc, out = run_on_pty(argv, ctl_env({"TERM": "xterm",
                                            "NO_COLOR": "1"}),
                             columns=columns)
        assert rc == 0, out
        lines = out.replace("\r\n", "\n").rstrip("\n").split("\r")[1:]
        lines = [x.replace("\033[K", "") for x in lines]
        assert len(lines) == 2, repr(out)
        assert all(len(x) <= columns for x in lines), (columns, lines)
        assert all(x.startswith("[") for x in lines), lines
        assert "resolved_manually" in lines[1], lines
        if columns == 65:
            assert lines[0].endswith("0/3 steps done, running: "), lines
        else:
            assert lines[0].endswith("] in_progress "), lines


def test_the_actor_under_sudo_is_the_operator(service):
    service.route("PATCH", "/v1/tasks/7/steps/a",
                  body={"name": "a", "status": "waiting_for_retry"})
    ok(ctl("step", "retry", "7", "a", "--reason", "r", url=service.url,
           env={"SUDO_USER": "ops-erin"}))
    body = json.loads(service.requests_for("/v1/tasks/7/steps/a")[0].body)
    if os.geteuid() == 0:
        assert body["actor"] == "ops-erin", body
    else:                               # SUDO_USER means nothing then
        assert body["actor"] != "ops-erin", body


def test_a_write_a_proxy_refused_is_unreachable():
    """Through a proxy that refuses the tunnel, the request's bytes
    reached only the proxy: taskerd was not reached (exit 3), nothing
    can have been carried out."""
    from test_http_outcomes import RawServer
    srv = RawServer([b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"])
    try:
        r = ctl("task", "cancel", "7", url="https://taskerd.invalid:8443",
                env={"https_proxy": srv.url, "HTTPS_PROXY": srv.url,
                     "no_proxy": "", "NO_PROXY": ""})
        assert r.returncode == 3, (r.returncode, r.stderr)
        assert "cannot reach" in r.stderr, r.stderr
    finally:
        srv.close()


def test_a_token_may_hold_a_hash(service, tmp_path):
    """Only a line starting with '#' is a comment: a token holding one was
    cut there, and taskerd's 401 gave no hint why."""
    service.route("GET", "/v1/workers", body={"workers": []})
    conf = tmp_path / "config"
    conf.write_text("# taskerd on this host\n  # (indented)\n"
                    "url = %s   # the local one\ntoken = s3cr#t-tok\n"
                    % service.url)
    os.chmod(str(conf), 0o600)
    ok(ctl("workers", env={"TASKER_CTL_CONFIG": str(conf)}))
    auth = [r.headers.get("Authorization")
            for r in service.requests_for("/v1/workers")]
    assert auth == ["Bearer s3cr#t-tok"], auth


def test_watch_reports_a_503_that_is_not_taskerds(service):
    """A proxy with no taskerd behind it answers 503 with its own page:
    the watch reports it and exits, as it does when it cannot reach the
    server at all.  It watched silently for ever, taking every 503 for
    taskerd's database away a moment."""
    service.route("GET", "/v1/tasks/7", status=503,
                  body="<html>Service Unavailable</html>\n")
    r = ctl("task", "watch", "7", "--interval", "50", url=service.url,
            timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "HTTP 503: <html>Service Unavailable" in r.stderr, r.stderr


def test_watch_waits_out_taskerds_503(service):
    """taskerd's own 503 (database_unavailable) is its database away a
    moment: the watch says so once and goes on to the task's end."""
    answers = iter([(503, {"error": {"code": "database_unavailable",
                                     "message": "the database is "
                                     "unavailable; try again shortly"}})] * 3)
    done = {"task_id": 7, "status": "complete", "namespace": "ns",
            "name": "x", "version": "1", "steps": [
                {"name": "a", "status": "complete", "depends_on": []}]}
    service.route("GET", "/v1/tasks/7",
                  handler=lambda req: next(answers, (200, done)))
    r = ctl("task", "watch", "7", "--interval", "50", url=service.url,
            timeout=10)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == [
        "tasker-ctl: the database is unavailable; still watching task 7"], \
        r.stderr
    assert "task 7 complete" in r.stdout, r.stdout


def test_a_template_description_reaches_the_terminal_as_text(service):
    """A template's description is its author's free text: an escape
    sequence in it (a double-quoted YAML "\\e[2J") cleared the operator's
    screen, printed as it was."""
    service.route("GET", "/v1/templates/ns/x", body={
        "namespace": "ns", "name": "x", "version": "1",
        "identity_strategy": "strict",
        "description": "onboards\x1b[2J a user\x07",
        "steps": [{"name": "a", "handler": "noop", "depends_on": []}]})
    r = ctl("templates", "show", "ns/x", url=service.url)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout, repr(r.stdout)
    assert "onboards [2J a user " in r.stdout, r.stdout
