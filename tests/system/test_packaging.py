"""`pipx install .` into a temporary home gives a working `packettracer` command (installed from
PyPI's packages as a user would get them; the pip cache makes repeated runs quick)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, ROOT


def _pipx() -> list[str]:
    exe = Path(sys.executable).parent / "pipx"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("pipx")
    if found is None:
        pytest.skip("pipx is not installed")
    return [found]


def test_pipx_install_gives_a_working_command(tmp_path: Path) -> None:
    env = dict(os.environ, PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [*_pipx(), "install", str(ROOT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    exe = tmp_path / "bin" / "packettracer"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("packettracer ")
    report = subprocess.run(
        [str(exe), "report", "-r", str(DATA / "relay-sample.pcap"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PACKETTRACER_HOME=str(tmp_path / "home")),
    )
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["summary"]["packets"] == 5 and len(doc["flows"]) == 2
    # the packaged demo capture made it into the installation
    demo = subprocess.run(
        [
            str(exe),
            "--snapshot",
            str(tmp_path / "demo.svg"),
            "--demo",
            "--duration",
            "2",
            "--db",
            ":memory:",
            "-n",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PACKETTRACER_HOME=str(tmp_path / "home")),
    )
    assert demo.returncode == 0, demo.stderr
    assert "<svg" in (tmp_path / "demo.svg").read_text()
