#!/usr/bin/env bash
# Runs the whole test suite in the bootstrapped environment. Fails when no test passed (nothing collected, or
# everything skipped), so a broken collection can never look green.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
set +u; source scripts/env.sh; set -u
export RSATALKER_REQUIRE_ROS=${RSATALKER_REQUIRE_ROS:-1}   # ROS tests may not be skipped here
# The node and CLI processes the suite starts (a hundred-odd) load the project's modules from their bytecode caches
# instead of compiling them each time (~0.1 s of CPU each), also where the environment turns writing the caches off
# (PYTHONDONTWRITEBYTECODE): written here, into the source tree's __pycache__ folders (ignored by git); a few tenths
# of a second when they are current. (The tests' own modules: test/conftest.py.)
python -m compileall -q rsatalker_ros test/support || true
report=$(mktemp)
# Per-test CPU time (test/conftest.py): summed up at the end, with the modules that took the most; a given
# RSATALKER_TEST_CPU_LOG=FILE keeps each test's figures there (JSON lines, appended)
cpu_log=${RSATALKER_TEST_CPU_LOG:-$(mktemp)}
if [ -z "${RSATALKER_TEST_CPU_LOG:-}" ]; then
  trap 'rm -f "$report" "$cpu_log"' EXIT
else
  : > "$cpu_log"
  trap 'rm -f "$report"' EXIT
fi
export RSATALKER_TEST_CPU_LOG="$cpu_log"
set +e
# Two pytest-xdist workers (RSATALKER_TEST_WORKERS, default 2), so that while one waits on real-time DDS traffic the other
# computes; each module's tests stay on one worker, the whole-graph tests one after another (test/conftest.py:
# xdist_units), each worker in its own ROS domain. RSATALKER_TEST_WORKERS=0 runs the suite in this process.
python -m pytest -n "${RSATALKER_TEST_WORKERS:-2}" --dist loadfile --timeout=900 --durations=15 --junitxml="$report" "$@"
rc=$?
set -e
python - "$cpu_log" <<'PY' || true
import collections, json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
tests = [r for r in rows if "test" in r]
procs = [r for r in rows if "process" in r]
cpu = lambda r: r["own_s"] + r["children_s"]
workers = [r for r in procs if r["process"] != "main"]
# (the main process's children are the workers, counted by themselves)
total = sum(cpu(r) for r in workers) + sum(r["own_s"] if workers else cpu(r) for r in procs if r["process"] == "main")
in_tests, own = sum(cpu(r) for r in tests), sum(r["own_s"] for r in tests)
print(f"CPU time: {total:.0f} s in the pytest processes and the processes they waited for; {in_tests:.0f} s of it in "
      f"tests ({own:.0f} s in-process, {in_tests - own:.0f} s in child processes), the rest collection and start-up")
modules = collections.Counter()
for r in tests:
    modules[r["test"].split("::")[0]] += cpu(r)
print("most CPU per module (in-process + child processes, s):")
for name, s in modules.most_common(15):
    print(f"  {s:6.1f}  {name}")
PY
passed=$(python - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) - int(s.get("failures", 0)) - int(s.get("errors", 0)) for s in suites)
print(total)
PY
) || passed=0
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "run_tests: no test passed (all skipped or none collected): failing" >&2
  exit 1
fi
exit "$rc"
