"""The libFuzzer harnesses run briefly and find nothing (issue 8,
acceptance 4): `tests/fuzz/run 10` builds each harness with clang, replays
every input in tests/fuzz/regressions/ (each crash ever found), then fuzzes
each harness for 10 seconds.  Longer runs: tests/fuzz/README.md.

The tree in harness.REPO must be configured (tests/run does it): the
harnesses include its autoconf.h.
"""

import shutil
import subprocess

import pytest

import harness

REPO = harness.REPO
RUN = REPO / "tests" / "fuzz" / "run"
SECONDS = 10


def libfuzzer_missing(tmp_path):
    """Why clang cannot build a libFuzzer binary here, or None."""
    clang = shutil.which("clang")
    if clang is None:
        return "clang is not installed (Debian: clang libclang-rt-dev llvm)"
    src = tmp_path / "probe.c"
    src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                   " { (void)d; (void)n; return 0; }\n")
    probe = subprocess.run(
        [clang, "-fsanitize=fuzzer,address,undefined", str(src), "-o",
         str(tmp_path / "probe")], capture_output=True, text=True)
    if probe.returncode != 0:
        return "clang cannot link a libFuzzer binary (Debian: " \
            "libclang-rt-dev): " + probe.stderr.strip()[-300:]
    return None


def test_fuzzers_find_nothing(tmp_path):
    why = libfuzzer_missing(tmp_path)
    if why is not None:
        pytest.skip(why)
    if not (REPO / "autoconf.h").exists():
        pytest.skip("the tree is not configured (no autoconf.h)")
    env = harness.clean_env({"TMPDIR": str(tmp_path)})
    # Build (about 15 s on two cores), replay, then 10 s per harness two at
    # a time: well under the limit, which only guards against a hang.
    r = subprocess.run([str(RUN), str(SECONDS)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    print(r.stdout)
    print(r.stderr)
    assert r.returncode == 0, \
        "tests/fuzz/run %d failed (exit %d):\n%s\n%s" % (
            SECONDS, r.returncode, r.stdout[-6000:], r.stderr[-2000:])
    for name in ("fuzz_proto", "fuzz_template", "fuzz_json_api",
                 "fuzz_schema"):
        assert "ok   %s:" % name in r.stdout, r.stdout
