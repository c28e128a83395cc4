"""The layers below the dashboard never load Textual or Rich: `report` (and the agent) must run
on a machine without a terminal, and quickly. Checked in a fresh interpreter, after a real
report run, so an import anywhere on that path (a feature, an analyzer) is caught.

Textual must not be loaded at all. Rich may be: httpx imports it for its own command-line entry
point when it is installed (it is, as a dependency of Textual), so for Rich the probe records
who imported it and fails on any packettracer module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "android.pcap"

PROGRAM = """
import builtins, contextlib, io, json, sys

offenders = []
_import = builtins.__import__

def watch(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] in ("textual", "rich"):
        importer = (globals or {}).get("__name__", "?")
        if importer.split(".")[0] == "packettracer":
            offenders.append([importer, name])
    return _import(name, globals, locals, fromlist, level)

builtins.__import__ = watch

import packettracer.services.report
import packettracer.services.runtime
import packettracer.capture.decoder
import packettracer.model.flows
import packettracer.model.flow_view
import packettracer.cli
EXTRA
from packettracer.cli import main

out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(["report", "-r", sys.argv[1], "--format", "json", "-n", "--offline",
                   "--db", ":memory:"])
print(json.dumps({
    "status": status,
    "flows": len(json.loads(out.getvalue())["flows"]),
    "textual": sorted(n for n in sys.modules if n.split(".")[0] == "textual"),
    "offenders": offenders,
}))
"""


def probe(tmp_path: Path, extra: str = "") -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM.replace("EXTRA", extra), str(FIXTURE)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "HOME": str(tmp_path),
            "PACKETTRACER_HOME": str(tmp_path / ".pt"),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == 0
    assert result["flows"] == 65  # the report really ran
    return result


def test_report_path_loads_neither_textual_nor_rich(tmp_path: Path) -> None:
    result = probe(tmp_path)
    assert result["textual"] == []
    assert result["offenders"] == []


def test_the_probe_can_fail(tmp_path: Path) -> None:
    """The same probe sees it when a packettracer module does import Textual and Rich."""
    result = probe(tmp_path, "import packettracer.app")
    assert "textual" in result["textual"]
    importers = {importer for importer, _ in result["offenders"]}  # type: ignore[attr-defined]
    assert "packettracer.app" in importers
    assert any(name.startswith("rich") for _, name in result["offenders"])  # type: ignore[attr-defined]
