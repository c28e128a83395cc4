"""`pipx install .` into a temporary home gives a working `packettracer` command (installed from
PyPI's packages as a user would get them; the pip cache makes repeated runs quick)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
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


# ---------------------------------------------------------------- the compiled DPI (setup.py)

_DPI = ROOT / "src" / "packettracer" / "model" / "dpi"


def _compiled_names() -> list[str]:
    """The module names setup.py compiles."""
    text = (ROOT / "setup.py").read_text()
    block = text.split("for name in (", 1)[1].split(")", 1)[0]
    return sorted(part.strip().strip('",') for part in block.split() if part.strip('",'))


def test_the_compiled_dpi_modules_are_the_ones_imported_and_match_their_sources() -> None:
    import importlib

    built = sorted(p.name.split(".", 1)[0] for p in _DPI.glob("*.so"))
    if not built:
        pytest.skip("pure-Python DPI modules here (setup.py compiles them with a C compiler)")
    assert built == _compiled_names()  # every one or none: they share one library
    for name in built:
        module = importlib.import_module(f"packettracer.model.dpi.{name}")
        compiled = Path(str(module.__file__))
        assert compiled.suffix == ".so", f"{name} imported from {compiled}"
        source = _DPI / f"{name}.py"
        assert compiled.stat().st_mtime >= source.stat().st_mtime, (
            f"{compiled.name} is older than {source.name}: rebuild with "
            "scripts/rebuild-compiled.sh (make test does)"
        )


def test_a_build_whose_compiler_fails_installs_the_pure_modules(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    out = tmp_path / "wheel"
    env = dict(os.environ, CC="false")  # a compiler that fails every compile
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), str(tree)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 and "No matching distribution" in result.stderr:
        pytest.skip("pip cannot fetch the build requirements here (no index)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pure-Python DPI modules (the compile failed" in result.stderr + result.stdout
    (wheel,) = out.glob("packettracer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "packettracer/model/dpi/inspector.py" in names
    assert not [n for n in names if n.endswith(".so")]
