"""`--serve` in a real headless Chromium (Debian's, driven by Playwright; no browser download):
the dashboard renders, keys reach it, the token guards non-local binding, and stopping the server
(or closing the tab) leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, packettracer_cmd

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
FIXTURE = DATA / "relay-sample.pcap"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_processes(marker: str, server_pid: int | None = None) -> list[int]:
    """Dashboard processes started for this test (their environment carries the marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env and int(entry.name) not in (os.getpid(), server_pid):
            found.append(int(entry.name))
    return found


class ServeProcess:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.state = tmp / "state.json"
        self.marker = f"PT_SERVE_TEST={os.getpid()}-{self.port}"
        env = dict(os.environ, PACKETTRACER_STATE_FILE=str(self.state), PACKETTRACER_HOME=str(tmp))
        env[self.marker.split("=")[0]] = self.marker.split("=")[1]
        self.proc = subprocess.Popen(
            [
                *packettracer_cmd(),
                "--serve",
                "--port",
                str(self.port),
                "-r",
                str(FIXTURE),
                "--db",
                ":memory:",
                "-n",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(err) from None
                time.sleep(0.1)
        raise AssertionError("--serve did not listen")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def read_state(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.state.read_text()))
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path)
    yield server
    server.stop()
    for pid in app_processes(server.marker):
        os.kill(pid, signal.SIGKILL)


async def wait_state(server: ServeProcess, key: str, value: object, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.read_state().get(key) == value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"state {key} never became {value!r}: {server.read_state()}")


async def test_dashboard_in_the_browser(served: ServeProcess, tmp_path: Path) -> None:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(served.url)
            await page.wait_for_selector("body.-first-byte", timeout=30_000)
            await wait_state(served, "panel", "1")
            await wait_state(served, "packets", 5)
            await asyncio.sleep(1.0)  # the page fades the terminal in
            await page.screenshot(path=str(tmp_path / "traffic.png"))
            assert (tmp_path / "traffic.png").stat().st_size > 5000
            await page.mouse.click(640, 400)  # focus the terminal
            await page.keyboard.press("p")
            await wait_state(served, "paused", True)
            await page.keyboard.press("p")
            await wait_state(served, "paused", False)
            await page.keyboard.press("7")
            await wait_state(served, "panel", "7")
            await page.screenshot(path=str(tmp_path / "relay.png"))
            assert len(app_processes(served.marker, served.proc.pid)) >= 1
            await page.close()  # closing the tab ends that dashboard process
            deadline = time.monotonic() + 15
            while app_processes(served.marker, served.proc.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert app_processes(served.marker, served.proc.pid) == []
        finally:
            await browser.close()


async def test_stopping_the_server_ends_every_app_process(served: ServeProcess) -> None:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = [await browser.new_page() for _ in range(2)]
            for page in pages:
                await page.goto(served.url)
                await page.wait_for_selector("body.-first-byte", timeout=30_000)
            assert len(app_processes(served.marker, served.proc.pid)) >= 2
            served.stop()
            assert served.proc.returncode is not None
            deadline = time.monotonic() + 10
            while app_processes(served.marker, served.proc.pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert app_processes(served.marker, served.proc.pid) == [], (
                "dashboard processes outlived the server"
            )
        finally:
            await browser.close()


def test_non_local_binding_needs_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *packettracer_cmd(),
            "--serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "-r",
            str(FIXTURE),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--serve-token" in result.stderr and "Traceback" not in result.stderr


def test_token_is_required_in_the_url(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [
            *packettracer_cmd(),
            "--serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--serve-token",
            "letmein",
            "-r",
            str(FIXTURE),
            "--db",
            ":memory:",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert refused.value.code == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token=letmein", timeout=5) as ok:
            assert ok.status == 200 and b"textual" in ok.read().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert b"warning" in (proc.stderr.read() if proc.stderr else b"")
