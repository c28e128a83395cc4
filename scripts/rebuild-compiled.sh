#!/usr/bin/env bash
# The DPI's compiled modules (setup.py) must match their sources: after an edit, rebuild them
# before tests or the dashboard run, or Python keeps importing the old compiled code.
# Called by `make run` and `make test`; a pure-Python build (no .so) has nothing to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
# The oldest compiled module is the reference (a module set that changed leaves others behind).
oldest=$(ls -tr src/packettracer/model/dpi/*.so 2>/dev/null | head -n 1 || true)
[ -n "$oldest" ] || exit 0
if [ -n "$(find src/packettracer/model/dpi src/packettracer/capture/packet.py setup.py -name '*.py' -newer "$oldest" | head -n 1)" ]; then
  echo "packettracer: DPI sources changed since their compile: rebuilding" >&2
  rm -f src/*__mypyc*.so src/packettracer/model/dpi/*.so
  .venv/bin/python -m pip install -q --no-deps -e .
fi
