"""Helpers the benchmark scripts share: the benchmark capture, and running a child process while
measuring its own CPU time and peak RSS (os.wait4 returns the rusage of exactly that child)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def run_measured(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> ChildRun:
    """Run `cmd` to completion; CPU and peak RSS are the child's own (not the whole tree's)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(f"  {cmd[0]} exited {proc.returncode}: {err.strip()[:300]}", file=sys.stderr)
    return ChildRun(proc.returncode, wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss)


def which(name: str) -> str | None:
    return shutil.which(name)


def packettracer_exe() -> str:
    exe = VENV_BIN / "packettracer"
    return str(exe) if exe.exists() else (shutil.which("packettracer") or "packettracer")
