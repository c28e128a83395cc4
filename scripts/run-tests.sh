#!/usr/bin/env bash
# The whole suite: static checks, then pytest. Called by `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
$V/ruff check src tests benchmarks
$V/ruff format --check src tests benchmarks
$V/mypy
exec $V/python -m pytest -q -rs "$@"
