"""Fixtures every test area may use: where the data lives, and whether we may act as root."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The suite never touches the user's ~/.packettracer: the database (and anything else kept there)
# of every packettracer the tests run, in-process or as a subprocess, goes to a throwaway folder.
if "PACKETTRACER_HOME" not in os.environ:
    os.environ["PACKETTRACER_HOME"] = tempfile.mkdtemp(prefix="packettracer-test-home-")
    atexit.register(shutil.rmtree, os.environ["PACKETTRACER_HOME"], True)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# The read-only corpus shipped beside the repository (../shared); tests skip when it is absent.
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
CORPUS_PCAPS = CORPUS / "pcap"
VENV_BIN = ROOT / ".venv" / "bin"


def is_root() -> bool:
    return os.geteuid() == 0


def packettracer_cmd() -> list[str]:
    """The installed command (in the venv the tests run from)."""
    exe = VENV_BIN / "packettracer"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("packettracer")
    if found:
        return [found]
    import sys

    return [sys.executable, "-m", "packettracer"]


def agent_command(site: str, nats_url: str, spool: Path, *extra: str) -> list[str]:
    """`packettracer agent` for `site` sending to `nats_url`, spooling under `spool`, with no
    local database; `extra` says what it captures (`-r FILE`, `-i IFACE`) and anything else."""
    return [
        *packettracer_cmd(), "agent", "--site", site, "--nats", nats_url,
        "--spool", str(spool), "--db", ":memory:", *extra,
    ]  # fmt: skip


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def corpus_pcaps() -> Path:
    if not CORPUS_PCAPS.is_dir():
        pytest.skip("the shared capture corpus (../shared/corpus/pcap) is not present")
    return CORPUS_PCAPS


@pytest.fixture
def require_root() -> None:
    if not is_root():
        pytest.skip("needs root (network namespaces / raw sockets)")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path
