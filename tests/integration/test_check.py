"""`taskerd -c FILE --check`: validate config and templates, no database.

Each broken template must be reported on stderr as "FILE:LINE: reason" with
the line of the offending step (or key) in the file we wrote.
"""

import os
import re

import pytest

import harness

VALID = """\
name: valid_flow
namespace_name: it
version: 1.0.0
description: two steps
step_templates:
  - name: fetch
    handler: noop
  - name: store
    handler: noop
    depends_on_step: fetch
"""

CYCLE = """\
name: cyclic
namespace_name: it
version: 1.0.0
step_templates:
  - name: start
    handler: noop
  - name: a
    handler: noop
    depends_on_steps: [start, c]
  - name: b
    handler: noop
    depends_on_step: a
  - name: c
    handler: noop
    depends_on_step: b
  - name: finish
    handler: noop
    depends_on_step: start
"""

UNKNOWN_DEP = """\
name: dangling
namespace_name: it
version: 1.0.0
step_templates:
  - name: fetch
    handler: noop
  - name: store
    handler: noop
    depends_on_steps:
      - fetch
      - missing_step
  - name: notify
    handler: noop
    depends_on_step: fetch
"""

DUPLICATE = """\
name: twice
namespace_name: it
version: 1.0.0
step_templates:
  - name: fetch
    handler: noop
  - name: store
    handler: noop
    depends_on_step: fetch
  - name: fetch
    handler: noop
  - name: notify
    handler: noop
"""

UNKNOWN_KEY = """\
name: typo
namespace_name: it
version: 1.0.0
step_templates:
  - name: fetch
    handler: noop
    default_retry_limt: 3
  - name: store
    handler: noop
    depends_on_step: fetch
"""

# Every delay would be the cap: a slip, refused rather than guessed at.
BACKOFF_BASE_OVER_MAX = """\
name: slow_retries
namespace_name: it
version: 1.0.0
step_templates:
  - name: fetch
    handler: noop
  - name: store
    handler: noop
    depends_on_step: fetch
    backoff:
      max: 10s
      base: 2m
"""

# A schema's problem is reported at its own line, however deep (a key
# with a '/' is "~1" in the path).
SCHEMA_DEEP = """\
name: deep_schema
namespace_name: it
version: 1.0.0
schema:
  type: object
  properties:
    user:
      type: object
      properties:
        "a/b":
          type: string
        email:
          type: string
          pattern: "(unclosed"
step_templates:
  - name: fetch
    handler: noop
"""

SCHEMA_ITEMS = """\
name: items_schema
namespace_name: it
version: 1.0.0
schema:
  type: object
  properties:
    "a/b":
      type: array
      items:
        - type: string
        - type: strng
step_templates:
  - name: fetch
    handler: noop
"""

# The daemon must not try to reach this.
NO_DB = "host=/nonexistent/taskerd-check-no-db port=5432 dbname=none user=nobody"


def step_lines(text, name, occurrence=1):
    """1-based line numbers of the block of step `name` (its n-th
    occurrence): from its "- name:" line to the line before the next step."""
    lines = text.splitlines()
    starts = [i for i, l in enumerate(lines) if re.match(r"\s*- name: *%s\s*$" % name, l)]
    start = starts[occurrence - 1]
    indent = lines[start].index("-")
    end = start + 1
    while end < len(lines) and not (lines[end][:indent + 1].strip() == "-"
                                    or (lines[end].strip() and
                                        len(lines[end]) - len(lines[end].lstrip()) < indent)):
        end += 1
    return set(range(start + 1, end + 1))


def line_of(text, needle):
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    raise ValueError(needle)


def config_for(tmp_path, templates_dir):
    return {
        "database": {"dsn": NO_DB},
        "http": {"listen": "127.0.0.1:%d" % harness.free_port()},
        "workers": {"count": 2, "path": harness.worker_bin()},
        "templates": {"dir": str(templates_dir)},
        "state_dir": str(tmp_path / "state"),
        "log": {"level": "info"},
    }


def check(tmp_path, templates, config_text=None):
    tdir = tmp_path / "templates"
    harness.write_templates(str(tdir), templates)
    cfg_path = tmp_path / "taskerd.yaml"
    cfg_path.write_text(config_text if config_text is not None
                        else harness.to_yaml(config_for(tmp_path, tdir)) + "\n")
    r = harness.run_cli(["-c", str(cfg_path), "--check"], timeout=20)
    return r, tdir, cfg_path


def errors_for(stderr, path):
    """(line, reason) for every "FILE:LINE: reason" naming path."""
    found = []
    for m in re.finditer(r"(\S+):(\d+): (.+)", stderr):
        fname = m.group(1)
        if os.path.basename(fname) == os.path.basename(str(path)) and \
                os.path.exists(fname) and os.path.samefile(fname, str(path)):
            found.append((int(m.group(2)), m.group(3)))
    return found


UNKNOWN_WORDS = ("unknown", "undefined", "no such", "not found", "does not exist",
                 "not defined", "missing")

CASES = [
    # id, file text, acceptable lines, words (all) in the reason, any-of words
    ("cycle", CYCLE, step_lines(CYCLE, "a") | step_lines(CYCLE, "b") | step_lines(CYCLE, "c"),
     ["cycle"], None),
    ("unknown_dependency", UNKNOWN_DEP, step_lines(UNKNOWN_DEP, "store"),
     ["missing_step"], UNKNOWN_WORDS),
    ("duplicate_step", DUPLICATE, step_lines(DUPLICATE, "fetch", occurrence=2),
     ["duplicate", "fetch"], None),
    ("unknown_key", UNKNOWN_KEY, {line_of(UNKNOWN_KEY, "default_retry_limt")},
     ["default_retry_limt"], ("unknown", "unexpected", "not allowed", "invalid")),
    ("schema_deep", SCHEMA_DEEP, {line_of(SCHEMA_DEEP, "(unclosed")},
     ["/properties/user/properties/email/pattern", "regular expression"],
     None),
    ("schema_items", SCHEMA_ITEMS, {line_of(SCHEMA_ITEMS, "strng")},
     ["/properties/a~1b/items/1/type"], None),
    ("backoff_base_over_max", BACKOFF_BASE_OVER_MAX,
     {line_of(BACKOFF_BASE_OVER_MAX, "base: 2m")},
     ["store", "backoff.base", "backoff.max", "120000 ms", "10000 ms"], None),
]


@pytest.mark.parametrize("text,lines,words,any_words",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_rejects_template(tmp_path, text, lines, words, any_words):
    r, tdir, _ = check(tmp_path, {"valid.yaml": VALID, "broken.yaml": text})
    assert r.returncode != 0, "exit 0 for a broken template\n" + r.stderr
    errs = errors_for(r.stderr, tdir / "broken.yaml")
    assert errs, "stderr does not name broken.yaml as FILE:LINE: reason:\n" + r.stderr
    line, reason = errs[0]
    assert line in lines, "line %d, expected one of %s: %s\n%s" % (
        line, sorted(lines), reason, r.stderr)
    for w in words:
        assert w in reason.lower(), "%r not in reason %r" % (w, reason)
    if any_words:
        assert any(w in reason.lower() for w in any_words), reason
    assert not errors_for(r.stderr, tdir / "valid.yaml"), r.stderr


def test_check_reports_every_broken_file(tmp_path):
    files = {"valid.yaml": VALID}
    files.update({"%s.yaml" % c[0]: c[1] for c in CASES})
    r, tdir, _ = check(tmp_path, files)
    assert r.returncode != 0
    for c in CASES:
        assert errors_for(r.stderr, tdir / ("%s.yaml" % c[0])), \
            "%s.yaml not reported:\n%s" % (c[0], r.stderr)
    assert not errors_for(r.stderr, tdir / "valid.yaml"), r.stderr


def test_check_accepts_valid_directory_without_database(tmp_path):
    r, _, _ = check(tmp_path, {"valid.yaml": VALID,
                               "other.yml": VALID.replace("valid_flow", "other_flow")})
    assert r.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        r.returncode, r.stdout, r.stderr)


def test_check_rejects_unknown_config_key(tmp_path):
    tdir = tmp_path / "templates"
    cfg = config_for(tmp_path, tdir)
    cfg["http"]["bogus_setting"] = 1
    text = harness.to_yaml(cfg) + "\n"
    r, _, cfg_path = check(tmp_path, {"valid.yaml": VALID}, config_text=text)
    assert r.returncode != 0, r.stderr
    errs = errors_for(r.stderr, cfg_path)
    assert errs, "stderr does not name the config file:\n" + r.stderr
    line, reason = errs[0]
    assert line == line_of(text, "bogus_setting"), (line, reason, text)
    assert "bogus_setting" in reason, reason


def test_check_rejects_config_backoff_base_over_max(tmp_path):
    tdir = tmp_path / "templates"
    cfg = config_for(tmp_path, tdir)
    cfg["steps"] = {"backoff": {"base": "10s", "max": "2s"}}
    text = harness.to_yaml(cfg) + "\n"
    r, _, cfg_path = check(tmp_path, {"valid.yaml": VALID}, config_text=text)
    assert r.returncode != 0, r.stderr
    errs = errors_for(r.stderr, cfg_path)
    assert errs, "stderr does not name the config file:\n" + r.stderr
    line, reason = errs[0]
    assert line == line_of(text, "    base:"), (line, reason, text)
    for w in ("steps.backoff.base", "10000 ms", "steps.backoff.max", "2000 ms"):
        assert w in reason, reason


def test_a_database_dsn_that_cannot_be_used_is_refused(tmp_path):
    """A misspelt connection option is refused by --check, and a start
    ends at once saying so (it passed the check, then was retried for 30 s
    as if the database were away).  A dsn key with no value (a config
    rendered with its variable unset) is refused too: it meant the
    embedded database, a node storing its tasks where no other sees them."""
    tdir = tmp_path / "templates"
    cfg = config_for(tmp_path, tdir)
    cfg["database"] = {"dsn": "hots=/tmp dbname=taskerd"}
    text = harness.to_yaml(cfg) + "\n"
    r, _, cfg_path = check(tmp_path, {"valid.yaml": VALID}, config_text=text)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s: database.dsn: invalid connection option \"hots\"" % \
        cfg_path in r.stderr, r.stderr
    r = harness.run_cli(["-c", str(cfg_path)], timeout=20)
    assert r.returncode == 1 and "database.dsn" in r.stderr, \
        (r.returncode, r.stderr)
    assert "retrying" not in r.stderr, r.stderr

    cfg = config_for(tmp_path, tdir)
    cfg.pop("database", None)
    text = "database:\n  dsn:\n" + harness.to_yaml(cfg) + "\n"
    r, _, cfg_path = check(tmp_path, {"valid.yaml": VALID}, config_text=text)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert errors_for(r.stderr, cfg_path) == [
        (2, "database.dsn has no value: leave the key out for its default "
         "(libpq connection string; unset: embedded PostgreSQL)")], r.stderr


def test_a_lock_timeout_not_shorter_than_statements_is_warned_about(
        tmp_path):
    """database.lock_timeout at or past database.statement_timeout: the
    check says what the waits on a lock are cut to (half the statement
    timeout), and passes."""
    tdir = tmp_path / "templates"
    cfg = config_for(tmp_path, tdir)
    cfg["database"].update(statement_timeout="1s")
    r, _, cfg_path = check(tmp_path, {"valid.yaml": VALID},
                           config_text=harness.to_yaml(cfg) + "\n")
    assert r.returncode == 0, r.stderr
    assert "warning: %s: database.lock_timeout (5000 ms) is not shorter " \
        "than database.statement_timeout (1000 ms): waits on a lock end " \
        "after 500 ms" % cfg_path in r.stderr, r.stderr
    cfg["database"].update(lock_timeout="900ms")
    r, _, _ = check(tmp_path, {"valid.yaml": VALID},
                    config_text=harness.to_yaml(cfg) + "\n")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


RUNS_NOTHING_YET = """\
name: deploy_later
namespace_name: it
version: 1.0.0
step_templates:
  - name: present
    handler: exec
    handler_config: { command: [sh, -c, "true"] }
  - name: script
    handler: exec
    handler_config: { command: [./handlers/not-yet.sh] }
  - name: tool
    handler: exec
    handler_config: { command: [taskerd-no-such-tool] }
  - name: native
    handler: plugin
    handler_config: { library: ./lib/libnot-yet.so, symbol: go }
"""


def test_missing_programs_are_warned_about(tmp_path):
    """An exec program or plugin library that is not there yet is a
    warning, not an error: a deployment may install it after the
    templates.  It names the step's line, and --check still passes."""
    r, tdir, _ = check(tmp_path, {"later.yaml": RUNS_NOTHING_YET})
    assert r.returncode == 0, r.stderr
    path = tdir / "later.yaml"
    found = dict(errors_for(r.stderr, path))
    assert set(found) == {min(step_lines(RUNS_NOTHING_YET, n)) for n in
                          ("script", "tool", "native")}, r.stderr
    assert all(line.startswith("warning: ") for line in
               r.stderr.splitlines() if "later.yaml" in line), r.stderr
    assert "no program %s/handlers/not-yet.sh to run" % tdir.resolve() \
        in r.stderr, r.stderr
    assert "no program taskerd-no-such-tool to run in PATH" in r.stderr
    assert "no library %s/lib/libnot-yet.so to load" % tdir.resolve() \
        in r.stderr, r.stderr
    assert '"present"' not in r.stderr


PORTED = """\
name: ported
namespace_name: it
version: 1.0.0
module_namespace: Tasker
environments:
  production:
    step_templates:
      - name: fetch
        handler_config: { url: "https://prod.example.com/fetch" }
handler_config: { timeout: 10 }
step_templates:
  - name: fetch
    handler_config: { url: "https://dev.example.com/fetch" }
"""


def test_tasker_keys_that_would_change_what_runs_are_warned_about(tmp_path):
    """A file ported from Tasker loads, but its per-environment overrides
    and its task-level handler_config, which taskerd does not read, are
    warned about at their lines: a step would otherwise call the base URL
    without a word.  Keys without such meaning load silently."""
    r, tdir, _ = check(tmp_path, {"ported.yaml": PORTED})
    assert r.returncode == 0, r.stderr
    found = dict(errors_for(r.stderr, tdir / "ported.yaml"))
    assert set(found) == {line_of(PORTED, "environments:"),
                          line_of(PORTED, "handler_config: { timeout")}, \
        r.stderr
    assert found[line_of(PORTED, "environments:")].startswith(
        "environments: "), found
    assert "not read" in found[line_of(PORTED, "environments:")], found
    assert all(line.startswith("warning: ") for line in
               r.stderr.splitlines() if "ported.yaml" in line), r.stderr
    assert "module_namespace" not in r.stderr, r.stderr


SERVICES = """\
name: calls
step_templates:
  - name: typo
    dependent_system: user_servce
    handler_config: { url: /users }
  - name: no_base
    dependent_system: audit
    handler_config: { url: /log }
  - name: fine
    dependent_system: user_service
    handler_config: { url: /users }
  - name: absolute
    dependent_system: elsewhere
    handler_config: { url: "http://127.0.0.1:9/x" }
  - name: lookup
    dependent_system: audit
    handler_config:
      url: "http://127.0.0.1:9/x"
      on_status: { "409": { lookup: { url: /log/1 } } }
"""


def test_relative_urls_without_a_base_url_are_warned_about(tmp_path):
    """A relative url follows its service's base_url: a service the
    config does not have (a typo), or one without a base_url, fails every
    attempt.  The file loads (the config may be fixed first), with a
    warning at the step."""
    tdir = tmp_path / "templates"
    conf = config_for(tmp_path, tdir)
    conf["services"] = {"user_service": {"base_url": "http://127.0.0.1:9"},
                        "audit": {"timeout": "5s"}}
    r, tdir, _ = check(tmp_path, {"calls.yaml": SERVICES},
                       harness.to_yaml(conf) + "\n")
    assert r.returncode == 0, r.stderr
    found = dict(errors_for(r.stderr, tdir / "calls.yaml"))
    assert set(found) == {line_of(SERVICES, "- name: typo"),
                          line_of(SERVICES, "- name: no_base"),
                          line_of(SERVICES, "- name: lookup")}, r.stderr
    assert found[line_of(SERVICES, "- name: typo")] == (
        'step "typo": url /users is relative, and service "user_servce" '
        "is not among the config's services"), found
    assert found[line_of(SERVICES, "- name: no_base")] == (
        'step "no_base": url /log is relative, and service "audit" has no '
        "base_url in the config"), found
    # A lookup's url too (lookups are built before the first request).
    assert found[line_of(SERVICES, "- name: lookup")] == (
        'step "lookup": on_status.409.lookup.url /log/1 is relative, and '
        'service "audit" has no base_url in the config'), found
    assert all(line.startswith("warning: ") for line in
               r.stderr.splitlines() if "calls.yaml" in line), r.stderr


def test_programs_that_cannot_run_are_warned_about(tmp_path):
    """A directory, or a script without its #! line (execve() does not
    fall back to sh), named as an exec step's program passes the check
    with a warning saying why it cannot run; every attempt used to fail
    for good with "Exec format error" or "Permission denied"."""
    tdir = tmp_path / "templates"
    (tdir / "handlers" / "adir").mkdir(parents=True)
    for name, text in (("bare.sh", "echo '{}'\n"),
                       ("good.sh", "#!/bin/sh\necho '{}'\n")):
        p = tdir / "handlers" / name
        p.write_text(text)
        p.chmod(0o755)
    (tdir / "handlers" / "adir").chmod(0o755)
    r, tdir, _ = check(tmp_path, {"cannot.yaml": """\
name: cannot
step_templates:
  - name: bare
    handler: exec
    handler_config: { command: [./handlers/bare.sh] }
  - name: adir
    handler: exec
    handler_config: { command: [./handlers/adir] }
  - name: good
    handler: exec
    handler_config: { command: [./handlers/good.sh] }
"""})
    assert r.returncode == 0, r.stderr
    assert "program %s/handlers/bare.sh is neither a binary nor a script " \
        "starting with #!" % tdir.resolve() in r.stderr, r.stderr
    assert "program %s/handlers/adir is not a file" % tdir.resolve() \
        in r.stderr, r.stderr
    assert "good.sh" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["--bogus"], ["--check"],
                                  ["-c", "x.yaml", "extra"],
                                  ["-c", "x.yaml", "--check", "--migrate"]])
def test_usage_errors_exit_2(args):
    """A command line taskerd cannot run exits 2 with its usage, before
    reading any file (exit 1 is for a config or database problem)."""
    r = harness.run_cli(args, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "usage: taskerd -c FILE" in r.stderr, r.stderr

