"""Tracing several targets at once, round after round, with everything around the probes: hop
names, AS and country from the resolution feature, route history through the store, route
changes and RTT shifts raised as alerts. Used by the dashboard's trace feature and by
`packettracer trace`; every collaborator is optional (None: that part is skipped).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packettracer.config import TraceSettings
from packettracer.model.trace import (
    PathHop,
    RouteChange,
    RttBaseline,
    RttShift,
    TargetState,
    TracePath,
)
from packettracer.services.tracer import (
    TraceError,
    TraceOptions,
    TracePermissionError,
    Tracer,
    resolve_target,
)

log = logging.getLogger(__name__)


def options_from(settings: TraceSettings, **overrides: Any) -> TraceOptions:
    values: dict[str, Any] = {
        "proto": settings.proto,
        "port": settings.port or None,
        "max_ttl": settings.max_ttl,
        "timeout": settings.timeout,
        "probes": settings.probes,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    options = TraceOptions(**values)
    options.validate()
    return options


@dataclass
class HopInfo:
    name: str | None = None
    asn: int | None = None
    as_name: str | None = None
    country: str | None = None


def hop_info(resolution: Any, address: str) -> HopInfo:
    """Name, AS and country of a hop from the resolution feature's caches (it never waits for
    the network: a reverse lookup or geo answer that is not there yet fills in on a later
    round). Names: learned from DNS/SNI first, then PTR."""
    info = HopInfo()
    if resolution is None:
        return info
    try:
        names = getattr(resolution, "names", None)
        entry = names.best(address) if names is not None else None
        if entry is not None:
            info.name = entry.name
        else:
            rdns = getattr(resolution, "rdns", None)
            if rdns is not None and getattr(rdns, "enabled", False):
                info.name = rdns.lookup(address)
        geo_service = getattr(resolution, "geo", None)
        geo = geo_service.lookup(address) if geo_service is not None else None
        if geo is not None:
            info.asn = getattr(geo, "asn", None)
            info.as_name = getattr(geo, "as_org", None) or getattr(geo, "isp", None)
            info.country = getattr(geo, "country", None)
    except Exception:
        log.debug("resolution lookup for %s failed", address, exc_info=True)
    return info


def trace_row(
    path: TracePath,
    state: TargetState,
    change: RouteChange | None,
    shift: RttShift | None,
    started: float,
) -> dict[str, Any]:
    """A completed trace as the store's `traces` row (with its hops)."""
    hops = []
    for hop in path.hops:
        stats = state.hops.get(hop.ttl)
        row: dict[str, Any] = {
            "ttl": hop.ttl,
            "ip": hop.address,
            "rtt_ms": hop.rtt_ms,
            "name": stats.name if stats else None,
            "asn": hop.asn,
            "destination": hop.destination,
        }
        if stats is not None and stats.country:
            row["country"] = stats.country
        hops.append(row)
    details: dict[str, Any] = {"proto": path.proto, "flow": state.flow_id}
    if change is not None:
        details["route_change"] = change.to_dict()
    if shift is not None:
        details["rtt_shift"] = shift.to_dict()
    return {
        "uid": uuid.uuid4().hex,
        "target": path.target,
        "target_ip": path.address,
        "method": path.proto,
        "started_at": started,
        "finished_at": path.timestamp,
        "reached": path.reached,
        "details": details,
        "hops": hops,
    }


def path_from_row(row: dict[str, Any]) -> TracePath:
    """A stored trace (TraceRepository.history row) back into a TracePath."""
    details = row.get("details") or {}
    hops = [
        PathHop(
            ttl=int(h["ttl"]),
            address=h.get("ip"),
            rtt_ms=h.get("rtt_ms"),
            asn=h.get("asn"),
            destination=bool(h.get("destination", False)),
        )
        for h in row.get("hops", [])
    ]
    return TracePath(
        target=str(row["target"]),
        address=str(row.get("target_ip") or row["target"]),
        proto=str(details.get("proto") or row.get("method") or "icmp"),
        timestamp=float(row.get("finished_at") or row.get("started_at") or 0.0),
        hops=hops,
        reached=bool(row.get("reached")),
    )


Recorder = Callable[[dict[str, Any]], Any]
"""Takes a trace row; may be a coroutine function."""


class TraceSession:
    """Targets being traced, each with its TargetState and Tracer."""

    def __init__(
        self,
        settings: TraceSettings,
        resolution: Any = None,
        alerts: Any = None,
        record: Recorder | None = None,
        history: Callable[[str], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.settings = settings
        self.resolution = resolution
        self.alerts = alerts
        self.record = record
        self.history = history
        self.targets: dict[str, TargetState] = {}
        self._tracers: dict[str, Tracer] = {}
        self.error: str | None = None
        """A session-wide problem (no raw-socket permission), one line."""
        self.on_event: Callable[[str], None] | None = None

    def _state(self, target: str, address: str, proto: str) -> TargetState:
        s = self.settings
        return TargetState(
            target,
            address,
            proto,
            history_size=s.history,
            baseline=RttBaseline(min_shift_ms=s.rtt_shift_ms, ratio=s.rtt_shift_ratio),
        )

    async def add(self, target: str, options: TraceOptions | None = None) -> TargetState:
        """Resolve `target`, open its tracer. A failure is kept in the state's `error` (one line)
        and re-raised as TraceError for callers that want to stop."""
        options = options or options_from(self.settings)
        key = target
        if key in self.targets and key in self._tracers:
            return self.targets[key]
        try:
            address, family = await resolve_target(target)
        except TraceError as exc:
            state = self._state(target, target, options.proto)
            state.error = str(exc)
            self.targets[key] = state
            raise
        state = self._state(target, address, options.proto)
        self.targets[key] = state
        tracer = Tracer(target, address, family, options)
        try:
            tracer.open()
        except TracePermissionError as exc:
            self.error = state.error = str(exc)
            raise
        except TraceError as exc:
            state.error = str(exc)
            raise
        state.flow_id = tracer.flow_id
        self._tracers[key] = tracer
        if self.history is not None:
            try:
                rows = await asyncio.to_thread(self.history, address)
                # Another probe type may hash onto another path: compare like with like.
                paths = [path_from_row(r) for r in reversed(rows) if r.get("hops")]
                state.seed(p for p in paths if p.proto == options.proto)
            except Exception:
                log.warning("reading the route history of %s failed", target, exc_info=True)
        return state

    def remove(self, target: str) -> None:
        tracer = self._tracers.pop(target, None)
        if tracer is not None:
            tracer.close()
        self.targets.pop(target, None)

    async def round(self, target: str) -> tuple[TracePath, RouteChange | None, RttShift | None]:
        tracer = self._tracers[target]
        state = self.targets[target]
        result = await tracer.run_round()
        addresses = {r.address for r in result.replies}
        infos = {a: hop_info(self.resolution, a) for a in addresses}
        asn_of = {a: i.asn for a, i in infos.items() if i.asn is not None}
        path, change, shift = state.apply_round(
            result.sent, result.replies, result.probed_ttls, time.time(), asn_of
        )
        self._fill(state, infos)
        await self._publish(path, state, change, shift, result.started)
        return path, change, shift

    @staticmethod
    def _fill(state: TargetState, infos: dict[str, HopInfo]) -> None:
        for hop in state.hops.values():
            info = infos.get(hop.address or "")
            if info is not None:
                hop.name = info.name or hop.name
                hop.asn = info.asn or hop.asn
                hop.as_name = info.as_name or hop.as_name
                hop.country = info.country or hop.country

    def refresh_hop_info(self) -> None:
        """Ask the resolution caches again (answers that arrived since the last round)."""
        for state in self.targets.values():
            addresses = {h.address for h in state.hops.values() if h.address}
            self._fill(state, {a: hop_info(self.resolution, a) for a in addresses})

    async def _publish(
        self,
        path: TracePath,
        state: TargetState,
        change: RouteChange | None,
        shift: RttShift | None,
        started: float,
    ) -> None:
        if self.record is not None:
            try:
                outcome = self.record(trace_row(path, state, change, shift, started))
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.warning("storing the trace to %s failed", path.target, exc_info=True)
        for event, kind, severity in (
            (change, "route.change", "medium"),
            (shift, "route.rtt_shift", "low"),
        ):
            if event is None:
                continue
            if self.on_event is not None:
                self.on_event(event.summary())
            self._alert(kind, severity, event.summary(), path, event.to_dict())

    def _alert(
        self, kind: str, severity: str, title: str, path: TracePath, evidence: dict[str, Any]
    ) -> None:
        raise_alert = getattr(self.alerts, "raise_alert", None)
        if raise_alert is None:
            return
        try:
            result = raise_alert(
                kind=kind,
                severity=severity,
                title=title,
                entities={"target": path.target, "dst": path.address},
                evidence=evidence,
                ts=path.timestamp,
                source="trace",
            )
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)
        except Exception:
            log.warning("raising a %s alert failed", kind, exc_info=True)

    async def run_rounds(self, rounds: int) -> None:
        """`rounds` rounds of every target, targets in parallel."""

        async def one(target: str) -> None:
            for _ in range(rounds):
                await self.round(target)

        await asyncio.gather(*(one(t) for t in list(self._tracers)))

    def close(self) -> None:
        for tracer in self._tracers.values():
            tracer.close()
        self._tracers.clear()
