"""`make install DESTDIR=...`: what lands where, and the installed systemd
unit passes `systemd-analyze verify` (issue 6, acceptance 1).

The tree in harness.REPO must be configured and built (tests/run does it).
The install directories are read from its Makefile, so the checks hold for
whatever --prefix/--sysconfdir/--with-systemdsystemunitdir it was configured
with.  `systemd-analyze verify` runs offline: it needs the systemd package,
not a running systemd.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

import harness

REPO = harness.REPO
UNIT = "taskerd.service"
DIRS = ("prefix", "bindir", "libexecdir", "pkglibexecdir", "sysconfdir",
        "pkgdatadir", "includedir", "systemdsystemunitdir")


def make(*args, timeout=300, stdin=None):
    return subprocess.run(["make", "-C", str(REPO), "--no-print-directory"]
                          + list(args), input=stdin,
                          env=harness.clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def make_vars(names):
    """The configured values of Makefile variables, fully expanded."""
    rules = "".join("_taskerd_print_%s:\n\t@echo '%s=$(%s)'\n" % (n, n, n)
                    for n in names)
    r = make("-s", "-f", "Makefile", "-f", "-",
             *("_taskerd_print_" + n for n in names), stdin=rules)
    if r.returncode != 0:
        raise harness.HarnessError("cannot read the Makefile's variables:\n"
                                   + r.stdout + r.stderr)
    return dict(line.split("=", 1) for line in r.stdout.splitlines()
                if "=" in line)


def under(destdir, path):
    """PATH (absolute, as configured) inside DESTDIR."""
    assert os.path.isabs(path), path
    return Path(str(destdir) + path)


def unit_settings(text):
    """{(section, key): [values...]} of a unit file (comments dropped)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def analyze_verify(unit_path):
    """Run `systemd-analyze verify` on one unit file; return (returncode,
    the output lines about that unit).  systemd-analyze exits 0 even for
    unknown keys and unparsable values (it logs "..., ignoring"), so every
    line it prints about our unit counts as a failure."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is not installed (Debian package "
                    "`systemd`; it runs offline, no systemd as PID 1 needed)")
    r = subprocess.run([exe, "verify", "--man=no", str(unit_path)],
                       env=harness.clean_env({"SYSTEMD_LOG_COLOR": "0"}),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    name = os.path.basename(str(unit_path))
    lines = [l for l in (r.stdout + r.stderr).splitlines()
             if str(unit_path) in l or name in l]
    return r.returncode, lines, r.stdout + r.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`make install DESTDIR=<tmp>` once for this module."""
    if not (REPO / "Makefile").is_file():
        raise harness.HarnessError("%s is not configured (run ./autogen.sh "
                                   "&& ./configure && make)" % REPO)
    dirs = make_vars(DIRS)
    destdir = tmp_path_factory.mktemp("destdir")
    r = make("install", "DESTDIR=%s" % destdir)
    assert r.returncode == 0, "make install failed:\n" + harness.tail(
        r.stdout + r.stderr)
    return destdir, dirs


def test_install_places_files(installed):
    destdir, d = installed
    for prog in (under(destdir, d["bindir"] + "/taskerd"),
                 under(destdir, d["libexecdir"] + "/taskerd-worker")):
        assert prog.is_file() and os.access(prog, os.X_OK), prog
    # Only taskerd is on PATH; the worker is an implementation detail.
    assert not under(destdir, d["bindir"] + "/taskerd-worker").exists()
    # Plugins are built against the installed header.
    header = under(destdir, d["includedir"] + "/taskerd_plugin.h")
    assert header.read_text() == (REPO / "include/taskerd_plugin.h").read_text()

    conf = under(destdir, d["sysconfdir"] + "/taskerd/taskerd.yaml")
    assert conf.read_text() == (REPO / "etc/taskerd.yaml").read_text()
    tmpl = under(destdir, d["sysconfdir"] + "/taskerd/templates/hello_world.yaml")
    assert tmpl.read_text() == (REPO / "etc/templates/hello_world.yaml").read_text()

    assert (under(destdir, d["pkgdatadir"] + "/examples/hello_world.yaml")
            .read_text() == tmpl.read_text())
    example = under(destdir, d["pkgdatadir"] + "/examples/onboarding")
    for rel in ("templates/user_onboarding.yaml", "services.yaml", "README.md"):
        assert (example / rel).read_text() == (
            REPO / "examples/onboarding" / rel).read_text(), rel

    sqldir = under(destdir, d["pkgdatadir"] + "/sql")
    want = sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert want and sorted(p.name for p in sqldir.glob("*.sql")) == want

    if d["systemdsystemunitdir"]:
        assert under(destdir, d["systemdsystemunitdir"] + "/" + UNIT).is_file()


def test_install_keeps_the_operators_config(tmp_path):
    """A later `make install` (an upgrade) leaves the config and the
    templates directory as the operator made them, and uninstall removes
    only what is still as shipped.  The config and the example template
    used to be written over on every install."""
    d = make_vars(DIRS)
    assert make("install", "DESTDIR=%s" % tmp_path).returncode == 0
    conf = under(tmp_path, d["sysconfdir"] + "/taskerd/taskerd.yaml")
    tdir = under(tmp_path, d["sysconfdir"] + "/taskerd/templates")
    conf.write_text(conf.read_text() + "# the operator's\n")
    (tdir / "hello_world.yaml").unlink()
    (tdir / "mine.yaml").write_text("name: mine\n")
    r = make("install", "DESTDIR=%s" % tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "keeping" in r.stdout, r.stdout
    assert conf.read_text().endswith("# the operator's\n")
    assert sorted(p.name for p in tdir.iterdir()) == ["mine.yaml"]
    r = make("uninstall", "DESTDIR=%s" % tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert conf.is_file() and (tdir / "mine.yaml").is_file()
    assert not under(tmp_path, d["bindir"] + "/taskerd").exists()


def test_installed_config_and_templates_check(installed):
    """The example config, read from where it was installed, finds the
    installed template directory next to it and validates."""
    destdir, d = installed
    conf = under(destdir, d["sysconfdir"] + "/taskerd/taskerd.yaml")
    r = subprocess.run([str(under(destdir, d["bindir"] + "/taskerd")),
                        "-c", str(conf), "--check"],
                       env=harness.clean_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 template(s)" in r.stdout + r.stderr, r.stdout + r.stderr


def test_installed_onboarding_example_runs(installed, tmp_path):
    """The installed onboarding example runs as its README says: the
    installed mock-services serves, services.yaml names the ports it
    listens on by default (it kept the demo's @PORT@ placeholders, and
    mock-services was not installed), and the config that merges them
    with the example template checks without a warning."""
    destdir, d = installed
    example = under(destdir, d["pkgdatadir"] + "/examples/onboarding")
    mock = under(destdir, d["pkglibexecdir"] + "/mock-services")
    assert mock.is_file() and os.access(mock, os.X_OK), mock
    assert not under(destdir, d["bindir"] + "/mock-services").exists()

    services = (example / "services.yaml").read_text()
    assert "@" not in services, services
    ports = re.findall(r'base_url: "http://127\.0\.0\.1:(\d+)"', services)
    usage = subprocess.run([str(mock), "--no-such-option"],
                           env=harness.clean_env(), capture_output=True,
                           text=True, timeout=10)
    assert usage.returncode != 0
    m = re.search(r"Ports default to (\d+), (\d+), (\d+)", usage.stderr)
    assert m and ports == list(m.groups()), (ports, usage.stderr)

    conf = tmp_path / "taskerd.yaml"
    conf.write_text(
        under(destdir, d["sysconfdir"] + "/taskerd/taskerd.yaml").read_text()
        .replace("dir: templates", "dir: %s" % (example / "templates"))
        + "\n".join(l for l in services.splitlines()
                    if not l.startswith("#")) + "\n")
    r = subprocess.run([str(under(destdir, d["bindir"] + "/taskerd")),
                        "-c", str(conf), "--check"],
                       env=harness.clean_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "level=warn" not in out, out
    assert "1 template(s)" in out, out

    # It serves (on free ports here: the defaults may be taken).
    portfile = tmp_path / "ports"
    p = subprocess.Popen([str(mock), "--user-port", "0", "--billing-port",
                          "0", "--notification-port", "0", "--port-file",
                          str(portfile)], env=harness.clean_env(),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        harness.wait_until(lambda: portfile.exists(), 10,
                           message="mock-services' port file")
        got = dict(l.split("=") for l in portfile.read_text().split())
        req = urllib.request.Request(
            "http://127.0.0.1:%s/users/validate" % got["user"], method="POST",
            data=json.dumps({"email": "a@example.com", "first_name": "A",
                             "last_name": "B"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            assert answer.status == 200
            assert json.load(answer)["valid"] is True
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0


def installed_unit(installed):
    destdir, d = installed
    if not d["systemdsystemunitdir"]:
        pytest.skip("configured --without-systemdsystemunitdir")
    return under(destdir, d["systemdsystemunitdir"] + "/" + UNIT)


def test_unit_follows_configured_paths(installed):
    _, d = installed
    text = installed_unit(installed).read_text()
    assert not re.search(r"@[a-z_]+@", text), "unsubstituted @dir@ in the unit"
    s = unit_settings(text)
    assert s[("Service", "ExecStart")] == [
        "%s/taskerd -c %s/taskerd/taskerd.yaml" % (d["bindir"], d["sysconfdir"])]
    # A reload checks the files first: a broken one fails `systemctl
    # reload` instead of being refused in the journal only.
    assert s[("Service", "ExecReload")] == [
        "%s/taskerd -c %s/taskerd/taskerd.yaml --check" % (d["bindir"],
                                                          d["sysconfdir"]),
        "/bin/kill -HUP $MAINPID"]


def test_unit_settings(installed):
    s = unit_settings(installed_unit(installed).read_text())

    def one(key, section="Service"):
        v = s.get((section, key))
        assert v and len(v) == 1, "%s= in [%s]: %r" % (key, section, v)
        return v[0]

    want = {
        "Type": "notify",
        "WatchdogSec": "30s", "Restart": "on-failure", "KillMode": "mixed",
        "TimeoutStopSec": "30s", "User": "taskerd", "Group": "taskerd",
        "StateDirectory": "taskerd", "ConfigurationDirectory": "taskerd",
        "RuntimeDirectory": "taskerd", "CapabilityBoundingSet": "",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "ProtectClock": "yes", "ProtectHostname": "yes",
        "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": "@system-service",
        "SystemCallArchitectures": "native",
    }
    for key, value in want.items():
        assert one(key) == value, key
    assert one("WantedBy", "Install") == "multi-user.target"
    # The supervisor must still be able to exec libexecdir/taskerd-worker,
    # and exec steps programs that compile as they run (Node.js, Java).
    for key in ("NoExecPaths", "ExecPaths", "InaccessiblePaths",
                "TemporaryFileSystem", "RootDirectory", "RootImage",
                "MemoryDenyWriteExecute"):
        assert ("Service", key) not in s, key


@pytest.fixture
def verifiable_unit(installed, tmp_path):
    """A copy of the installed unit whose ExecStart and ExecReload name the
    DESTDIR binary: verify checks that the executable exists, and the
    configured path (e.g. /usr/local/bin/taskerd) is not installed on this
    machine."""
    destdir, d = installed
    text = installed_unit(installed).read_text()
    real = d["bindir"] + "/taskerd"
    for key in ("ExecStart", "ExecReload"):
        assert text.count("%s=%s " % (key, real)) == 1
        text = text.replace("%s=%s " % (key, real),
                            "%s=%s " % (key, under(destdir, real)))
    path = tmp_path / UNIT
    path.write_text(text)
    return path


def test_systemd_analyze_verify(verifiable_unit):
    rc, lines, out = analyze_verify(verifiable_unit)
    assert rc == 0 and not lines, out


def test_systemd_analyze_verify_check_is_strict(verifiable_unit):
    """The check above would notice a misspelt key or a bad value: those
    are only warnings to systemd-analyze (exit status 0)."""
    text = verifiable_unit.read_text().replace(
        "[Service]\n", "[Service]\nProtectSystm=strict\nProtectHome=maybe\n", 1)
    verifiable_unit.write_text(text)
    rc, lines, out = analyze_verify(verifiable_unit)
    assert any("ProtectSystm" in l for l in lines), out
    assert any("maybe" in l or "ProtectHome" in l for l in lines), out


def test_uninstall_removes_every_file(installed, tmp_path):
    destdir = tmp_path / "destdir"
    r = make("install", "DESTDIR=%s" % destdir)
    assert r.returncode == 0, harness.tail(r.stdout + r.stderr)
    r = make("uninstall", "DESTDIR=%s" % destdir)
    assert r.returncode == 0, harness.tail(r.stdout + r.stderr)
    left = [str(p) for p in destdir.rglob("*") if not p.is_dir()]
    assert left == []
