"""`packettracer trace TARGET...`: headless traceroute with per-hop statistics, route history
(in the database) and route-change detection against the previous trace of each target."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.model.trace import TargetState
from packettracer.services.runtime import Runtime
from packettracer.services.trace_session import TraceSession, options_from
from packettracer.services.tracer import PROTOS, TraceError, TracePermissionError, can_trace

HELP = "Trace the route to one or more targets (ICMP, UDP or TCP probes; needs raw sockets)."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="host name or address")
    parser.add_argument("--proto", choices=PROTOS, help="probe type (default [trace] proto: icmp)")
    parser.add_argument("--port", type=int, metavar="N", help="destination port for udp/tcp")
    parser.add_argument("--rounds", type=int, metavar="N", help="rounds (default [trace] rounds)")
    parser.add_argument("--max-ttl", type=int, metavar="N", help="highest TTL probed")
    parser.add_argument("--probes", type=int, metavar="N", help="probes per hop and round")
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="seconds to wait after a round's last probe"
    )
    parser.add_argument(
        "--format", choices=["json", "table"], default="table", help="output format"
    )
    parser.add_argument(
        "--no-history", action="store_true", help="neither read nor store the route history"
    )


def _printable(text: str | None) -> str:
    """Names come from DNS answers: data, never terminal control sequences."""
    if not text:
        return ""
    return "".join(c if c.isprintable() else "?" for c in text)


class _History:
    """Route history in the database (the store's trace repository), if it can be opened."""

    def __init__(self, db_path: str) -> None:
        from packettracer.services.store import Repositories, open_database

        self.location, self.conn = open_database(db_path)
        self.repo = Repositories().traces

    def rows(self, target: str) -> list[dict[str, Any]]:
        return self.repo.history(self.conn, target=target, limit=20)

    def record(self, row: dict[str, Any]) -> None:
        self.repo.insert_many(self.conn, [row])

    def close(self) -> None:
        self.conn.close()


def _open_history(settings: Settings, disabled: bool) -> _History | None:
    if disabled:
        return None
    try:
        return _History(settings.store.db_path)
    except ImportError:
        return None
    except Exception as exc:
        sys.stderr.write(f"packettracer: warning: route history not kept: {exc}\n")
        return None


def render_table(states: list[TargetState], rounds: int) -> str:
    out: list[str] = []
    for state in states:
        head = f"trace to {state.target}"
        if state.address != state.target:
            head += f" ({state.address})"
        out.append(f"{head}, {state.proto}, {state.rounds}/{rounds} rounds, flow {state.flow_id}")
        if state.error:
            out.append(f"  {state.error}")
            out.append("")
            continue
        out.append(
            f"{'TTL':>4}  {'Address':<28} {'Name':<24} {'AS':>8} {'CC':<3}"
            f" {'Loss':>5} {'Last':>7} {'Avg':>7} {'Min':>7} {'Max':>7} {'Jitter':>7}"
        )
        for hop in state.hop_list():
            if hop.silent:
                out.append(f"{hop.ttl:>4}  *")
                continue
            addr = hop.address or "*"
            others = len(hop.addresses) - 1
            if others:
                addr += f" (+{others})"
            flag = " <" if hop.destination else f" {hop.unreachable}" if hop.unreachable else ""
            out.append(
                f"{hop.ttl:>4}  {addr + flag:<28} {_printable(hop.name)[:24]:<24}"
                f" {('AS' + str(hop.asn)) if hop.asn else '':>8} {hop.country or '':<3}"
                f" {hop.loss * 100:>4.0f}% {_ms(hop.last_ms)} {_ms(hop.avg_ms)}"
                f" {_ms(hop.min_ms)} {_ms(hop.max_ms)} {_ms(hop.jitter_ms)}"
            )
        for change in state.changes:
            out.append(f"  ! {change.summary()}")
        for shift in state.shifts:
            out.append(f"  ! {shift.summary()}")
        message = state.outcome()
        if message:
            out.append(f"  {message}")
        out.append("")
    return "\n".join(out)


def _ms(value: float | None) -> str:
    return f"{value:>7.2f}" if value is not None else f"{'-':>7}"


async def _trace(
    args: argparse.Namespace, settings: Settings, history: _History | None
) -> TraceSession:
    options = options_from(
        settings.trace,
        proto=args.proto,
        port=args.port,
        max_ttl=args.max_ttl,
        probes=args.probes,
        timeout=args.timeout,
    )
    record: Callable[[dict[str, Any]], Any] | None = history.record if history else None
    runtime, resolution = _resolution(settings)
    session = TraceSession(
        settings.trace,
        resolution=resolution,
        record=record,
        history=history.rows if history else None,
    )
    rounds = args.rounds if args.rounds is not None else settings.trace.rounds
    try:
        if runtime is not None:
            runtime.start()
        for target in args.targets:
            try:
                await session.add(target, options)
            except TracePermissionError:
                raise
            except TraceError:
                if len(args.targets) == 1:
                    raise
        await session.run_rounds(rounds)
        if resolution is not None:
            # Reverse lookups queued during the rounds: give them a moment to land.
            await _settle_names(resolution)
            session.refresh_hop_info()
    finally:
        session.close()
        if runtime is not None:
            await runtime.stop()
    return session


def _resolution(settings: Settings) -> tuple[Runtime | None, Any]:
    """Hop names, AS and country come from the resolution feature, run here on its own (no
    capture). -n leaves it out."""
    if not settings.resolve.enabled:
        return None, None
    try:
        from packettracer.services.resolution_feature import create_resolution_feature
    except ImportError:
        return None, None
    runtime = Runtime(settings)
    try:
        feature = create_resolution_feature(runtime, "dashboard")
        feature.attach(runtime)
    except Exception as exc:
        log.warning("no hop names: %s", exc)
        return None, None
    runtime.features[feature.name] = feature
    return runtime, feature


async def _settle_names(resolution: Any, seconds: float = 1.0) -> None:
    rdns = getattr(resolution, "rdns", None)
    drain = getattr(rdns, "drain", None)
    if rdns is not None and getattr(rdns, "enabled", False) and callable(drain):
        await drain(seconds)


def run(args: argparse.Namespace, settings: Settings) -> int:
    rounds = args.rounds if args.rounds is not None else settings.trace.rounds
    if rounds < 1:
        raise UsageError(f"trace: --rounds must be at least 1, got {rounds}")
    try:
        options_from(
            settings.trace,
            proto=args.proto,
            port=args.port,
            max_ttl=args.max_ttl,
            probes=args.probes,
            timeout=args.timeout,
        )
    except TraceError as exc:
        raise UsageError(f"trace: {exc.message}") from None
    refused = can_trace()
    if refused is not None:
        raise TraceError(refused)
    history = _open_history(settings, args.no_history)
    try:
        session = asyncio.run(_trace(args, settings, history))
    finally:
        if history is not None:
            history.close()
    states = list(session.targets.values())
    if args.format == "json":
        doc = {"targets": [s.to_dict() for s in states]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(states, rounds))
    sys.stdout.flush()
    failed = [s for s in states if s.error or not s.reached]
    for state in failed:
        sys.stderr.write(f"packettracer: {_printable(state.outcome())}\n")
    return 1 if failed else 0
