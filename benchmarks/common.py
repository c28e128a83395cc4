"""Helpers the benchmark scripts share: the benchmark capture, and running a child process while
measuring its own CPU time and peak RSS (os.wait4 returns the rusage of exactly that child)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench-data"
BENCH_PCAP = BENCH_DIR / "bench.pcap"
MAKE_BENCH = ROOT / ".." / "shared" / "bench" / "make-bench-capture.sh"
VENV_BIN = ROOT / ".venv" / "bin"


def ensure_bench_capture() -> Path:
    """bench-data/bench.pcap, built from the shared corpus when missing (bench-data/ is ignored
    by git)."""
    if BENCH_PCAP.exists() and BENCH_PCAP.stat().st_size > 0:
        return BENCH_PCAP
    if not MAKE_BENCH.exists():
        sys.exit(f"no {BENCH_PCAP.relative_to(ROOT)} and no ../shared/bench to build it from")
    BENCH_DIR.mkdir(exist_ok=True)
    print(f"building {BENCH_PCAP.relative_to(ROOT)} ...", flush=True)
    subprocess.run(["bash", str(MAKE_BENCH), str(BENCH_PCAP)], check=True)
    return BENCH_PCAP


@dataclass
class ChildRun:
    returncode: int
    wall: float
    user: float
    sys: float
    maxrss_kib: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys


# Runs argv[2:] and writes "user sys maxrss_kib returncode" to the file argv[1]. A separate small
# process on purpose: Linux carries the RSS high-water mark of the process that forks into the
# child's ru_maxrss, so children forked from a benchmark that has grown would inherit its size.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_pid, status, ru = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(cmd: list[str]) -> ChildRun:
    """Run `cmd` (stdout discarded); CPU and peak RSS are that process's own."""
    with tempfile.NamedTemporaryFile("r", suffix=".rusage") as out:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, out.name, *cmd], stderr=subprocess.PIPE, check=False
        )
        wall = time.perf_counter() - start
        fields = out.read().split()
    if len(fields) != 4:
        sys.exit(f"could not measure {cmd[0]}: {proc.stderr.decode(errors='replace')[:300]}")
    user, sys_time, maxrss, code = (
        float(fields[0]),
        float(fields[1]),
        int(fields[2]),
        int(fields[3]),
    )
    if code != 0:
        err = proc.stderr.decode(errors="replace").strip()[:300]
        print(f"  {cmd[0]} exited {code}: {err}", file=sys.stderr)
    return ChildRun(code, wall, user, sys_time, maxrss)


def which(name: str) -> str | None:
    return shutil.which(name)


def packettracer_exe() -> str:
    exe = VENV_BIN / "packettracer"
    return str(exe) if exe.exists() else (shutil.which("packettracer") or "packettracer")
