#!/usr/bin/env bash
# The whole test suite, from a fresh machine: sets up .venv, then runs the core
# tests, each integration's tests and every benchmark once as a test.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh || { echo "set-up failed"; exit 1; }
py=.venv/bin/python
status=0
run() {
    echo "== $*"
    "$py" -m pytest -q -p no:cacheprovider "$@"
    rc=$?
    # 5: no tests collected (an empty suite must not turn CI red).
    if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi
}
run tests
for d in integrations/*/tests; do
    [ -d "$d" ] && run "$d"
done
if [ -d bench ]; then
    run bench --benchmark-disable
fi
if [ $status -eq 0 ]; then echo "ALL TEST SUITES PASSED"; else echo "SOME TEST SUITE FAILED"; fi
exit $status
