"""`packettracer --serve`: the same dashboard in a web browser, served locally by textual-serve.

Every browser tab gets its own dashboard process. Each one runs in a process group of its own, so
closing the tab or stopping the server ends it and everything it started (a naive setup leaves
app processes spinning at 100% CPU after the server is gone). Bound to 127.0.0.1 by default;
binding elsewhere needs `--serve-token`, which the URL must carry (`/?token=...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from packettracer.errors import UsageError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
TOKEN_COOKIE = "packettracer_token"
# Flags of the serving process that the dashboard processes must not see again.
SERVE_ONLY_FLAGS = {"--serve": 0, "--host": 1, "--port": 1, "--serve-token": 1}
QUIT_GRACE = 3.0


def dashboard_argv(argv: Sequence[str]) -> list[str]:
    """The command line of one dashboard process: ours without the serving options."""
    out: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name, eq, _ = arg.partition("=")
        if name in SERVE_ONLY_FLAGS:
            if not eq:
                skip = SERVE_ONLY_FLAGS[name]
            continue
        out.append(arg)
    return out


class GroupedAppService(AppService):
    """An AppService whose process leads its own process group, so it can be ended whole."""

    registry: set[asyncio.subprocess.Process] = set()

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        environment = self._build_environment(width=width, height=height)
        process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        self._process = process
        assert process.stdin is not None
        self._stdin = process.stdin
        self.registry.add(process)
        return process

    async def stop(self) -> None:
        process = self._process
        with contextlib.suppress(Exception):
            await asyncio.wait_for(super().stop(), QUIT_GRACE)
        if process is not None:
            await end_process_group(process)
            self.registry.discard(process)


async def end_process_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, QUIT_GRACE), (signal.SIGKILL, QUIT_GRACE)):
        if process.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), wait)
    # The shell may be gone while a child it started lives on in the same group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class DashboardServer(Server):
    def __init__(self, command: str, host: str, port: int, token: str | None) -> None:
        url_host = f"[{host}]" if ":" in host else host
        super().__init__(
            command,
            host=host,
            port=port,
            title="PacketTracer",
            public_url=f"http://{url_host}:{port}",
        )
        self.token = token

    def initialize_logging(self) -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")

    def _authorized(self, request: web.Request) -> bool:
        if not self.token:
            return True
        offered = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        return hmac.compare_digest(offered.encode(), self.token.encode())

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/static"):
            return await handler(request)
        if not self._authorized(request):
            raise web.HTTPForbidden(text="PacketTracer: this URL needs ?token=... (--serve-token)")
        response = await handler(request)
        if self.token and request.query.get("token"):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._auth)
        return app

    async def on_startup(self, app: web.Application) -> None:
        suffix = f"/?token={self.token}" if self.token else "/"
        print(f"PacketTracer dashboard on {self.public_url}{suffix}  (Ctrl+C stops)", flush=True)

    async def on_shutdown(self, app: web.Application) -> None:
        await asyncio.gather(
            *(end_process_group(p) for p in list(GroupedAppService.registry)),
            return_exceptions=True,
        )
        GroupedAppService.registry.clear()

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # As textual-serve's own handler, with an AppService that ends its process group.
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service: GroupedAppService | None = None

        async def close() -> None:
            await websocket.close()

        try:
            await websocket.prepare(request)
            app_service = GroupedAppService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("dashboard session failed")
        finally:
            if app_service is not None:
                await app_service.stop()
        return websocket


def serve_dashboard(host: str, port: int, token: str | None, argv: Sequence[str]) -> int:
    if host not in LOOPBACK_HOSTS:
        if not token:
            raise UsageError(
                f"--serve on {host} would expose the dashboard to the network",
                "add --serve-token TOKEN (the URL must then carry ?token=TOKEN)",
            )
        sys.stderr.write(
            f"packettracer: warning: serving on {host}: anyone who can reach this address "
            "and knows the token can watch this host's traffic\n"
        )
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: not a TCP port")
    args = dashboard_argv(argv)
    command = "exec " + shlex.join([sys.executable, "-m", "packettracer", *args])
    server = DashboardServer(command, host, port, token)
    try:
        server.serve()
    except OSError as exc:
        raise UsageError(f"--serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    return 0
