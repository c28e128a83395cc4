"""`packettracer agent`: headless capture and analysis on a remote site, streamed to NATS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from packettracer.capture.source import FileSource, PacketSource
from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.services.features import install_features
from packettracer.services.relay.agent import AgentPublisher
from packettracer.services.relay.connection import RelayAuthError, RelayError, connect
from packettracer.services.runtime import Runtime

HELP = "Capture on this host and stream flows, statistics and alerts to a collector over NATS."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", required=True, help="this site's name (letters, digits, - _)")
    parser.add_argument("--nats", required=True, metavar="URL", help="nats://HOST:4222")
    parser.add_argument("-i", "--interface", metavar="IFACE", help="capture interface")
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF capture filter")
    parser.add_argument("-r", "--read", metavar="FILE", help="replay a capture file instead")
    parser.add_argument("--realtime", action="store_true", help="replay with original pacing")
    parser.add_argument(
        "--capture-backend", choices=["auto", "afpacket", "scapy"], help="live capture backend"
    )
    auth = parser.add_argument_group("authentication (as the NATS server requires)")
    auth.add_argument("--creds", metavar="FILE", help="NATS credentials file (JWT + NKey)")
    auth.add_argument("--nkey", metavar="FILE", help="NKey seed file")
    auth.add_argument("--token", help="authentication token")
    auth.add_argument("--user", help="user name")
    auth.add_argument("--password", help="password")
    auth.add_argument("--tls-ca", metavar="FILE", help="CA bundle for the server's certificate")
    parser.add_argument("--spool", metavar="DIR", help="spool folder for offline buffering")
    parser.add_argument(
        "--heartbeat", type=float, metavar="S", help="heartbeat interval (default 1 s)"
    )


def _apply(args: argparse.Namespace, settings: Settings) -> None:
    rs = settings.relay
    rs.site = args.site
    rs.url = args.nats
    for name, attr in (
        ("creds", "creds"),
        ("nkey", "nkey_seed"),
        ("token", "token"),
        ("user", "user"),
        ("password", "password"),
        ("tls_ca", "tls_ca"),
        ("spool", "spool_dir"),
    ):
        value = getattr(args, name)
        if value:
            setattr(rs, attr, value)
    if args.heartbeat:
        rs.heartbeat_interval = args.heartbeat
    cap = settings.capture
    if args.interface:
        cap.interface = args.interface
    if args.filter:
        cap.bpf_filter = args.filter
    if args.read:
        cap.read_file = args.read
    if args.realtime:
        cap.realtime = True
    if args.capture_backend:
        cap.backend = args.capture_backend


def _open_source(settings: Settings) -> PacketSource:
    cap = settings.capture
    if cap.read_file:
        return FileSource(cap.read_file, realtime=cap.realtime, batch_size=cap.batch_size)
    from packettracer.capture.live import open_live_source

    return open_live_source(settings)


async def _preflight(settings: Settings) -> None:
    """Refused credentials end the agent with one line now; an unreachable server does not (the
    agent spools until it comes)."""
    try:
        nc = await connect(settings.relay, reconnect=False)
    except RelayAuthError:
        raise
    except RelayError:
        return
    await nc.close()


async def _run(settings: Settings) -> int:
    await _preflight(settings)
    source = _open_source(settings)
    userspace = settings.capture.bpf_filter if settings.capture.read_file else None
    runtime = Runtime(settings, source, userspace_filter=userspace)
    if runtime.pipeline.filter is not None:
        runtime.pipeline.filter.validate()
    features = install_features(runtime, "agent")
    relay = runtime.features.get("relay")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime.start()
    capture = runtime.capture
    assert capture is not None
    try:
        waiters: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(capture.done.wait()),
        }
        agent_task = next(t for t in runtime._tasks if t.get_name() == "relay-agent")
        waiters.add(agent_task)
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            if task is not agent_task:
                task.cancel()
        if agent_task in done and agent_task.exception() is not None:
            raise agent_task.exception()  # type: ignore[misc]
        if runtime.errors:
            raise UsageError(runtime.errors[-1])
        # A file was fully replayed, or we were asked to stop: end the flows and flush.
        runtime.pipeline.finish()
        for feature in features:
            finish = getattr(feature, "finish", None)
            if finish is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(finish(), timeout=10)
        if relay is not None and relay.agent is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_wait_sent(relay.agent), timeout=10)
    finally:
        await runtime.stop()
    return 0


async def _wait_sent(agent: AgentPublisher) -> None:
    """Deliver what is pending or spooled before exiting (the caller bounds the wait); what is
    still undelivered stays in the spool for the next start."""
    while agent.pending or len(agent.spool):
        if agent.connected:
            await agent.finish()
        await asyncio.sleep(0.05)


def run(args: argparse.Namespace, settings: Settings) -> int:
    _apply(args, settings)
    code = asyncio.run(_run(settings))
    sys.stdout.flush()
    return code
