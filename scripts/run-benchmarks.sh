#!/usr/bin/env bash
# Every benchmark under benchmarks/ (each prints its figures; none asserts). Called by `make bench`.
# A benchmark that cannot run here (no root, a tool missing) says so and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in benchmarks/*.py; do
  [ "$(basename "$script")" = common.py ] && continue
  echo "== $script"
  .venv/bin/python "$script" || { echo "   ($script exited $?)"; status=1; }
done
exit $status
