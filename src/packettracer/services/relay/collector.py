"""The collector side of the relay: folds agents' messages into this process's state.

Ended flows and alerts come from durable JetStream consumers (named by `durable_name`), so what
agents published while this collector was away arrives when it returns, and each is acknowledged
only after it has been processed. A per-site sequence number drops redeliveries. Heartbeats, stats
and flow updates come over plain subscriptions. Every message is validated; a malformed or
oversized one is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from packettracer.config import RelaySettings
from packettracer.model.flows import OPTIONAL_RECORD_FIELDS, RECORD_FIELDS, Flow
from packettracer.services.relay import messages as m
from packettracer.services.relay.agent import ensure_stream
from packettracer.services.relay.connection import RelayAuthError, RelayError, connect
from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)

LIVE, LATE, LOST = "live", "late", "lost"
MAX_REMOTE_FLOWS = 200_000
SEEN_WINDOW = 500_000
STORE_INTERVAL = 10.0  # seconds between two database updates of one agent


@dataclass
class AgentState:
    site: str
    host: str = "-"
    interface: str = "-"
    version: str = "-"
    first_seen: float = field(default_factory=time.time)
    last_heard: float = field(default_factory=time.time)
    """Wall time of the last message of any kind from this agent."""
    last_heartbeat: float | None = None
    interval: float = 1.0
    lag: float = 0.0
    """Seconds between the agent sending its last heartbeat and us receiving it."""
    pps: float = 0.0
    bps: float = 0.0
    drops: int = 0
    flows_active: int = 0
    flows_ended: int = 0
    alerts: int = 0
    cpu: float = 0.0
    rss: int = 0
    spooled: int = 0
    packets: int = 0
    bytes: int = 0
    messages: int = 0
    msg_rate: float = 0.0
    status: str = LIVE
    _rate_mark: tuple[float, int] = (0.0, 0)
    _stored_at: float = 0.0


def flow_from_record(flow_id: int, site: str, record: dict[str, Any]) -> Flow:
    """A Flow built from a relayed record, so every panel can show it like a local one."""
    flow = Flow.__new__(Flow)
    flow.id = flow_id
    flow.key = ("relay", site, record.get("id", flow_id))  # type: ignore[assignment]
    flow.site = site
    flow.ext = None
    flow.inspect_left = 0
    flow.end_reason = None
    flow.rate_bps = 0.0
    flow.rate_pps = 0.0
    flow._tick_bytes = 0
    flow._tick_packets = 0
    flow.src_packed = b""
    flow.vlan = int(record.get("vlan") or 0)
    update_flow(flow, record)
    return flow


_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
# Record keys that map onto Flow attributes; any other key is an extension fact (flow.set).
_CORE = frozenset(RECORD_FIELDS) | frozenset(OPTIONAL_RECORD_FIELDS) | {"id"}


def update_flow(flow: Flow, record: dict[str, Any]) -> None:
    flow.proto = _PROTO_NUMBERS.get(record["proto"], 0)
    flow.src = record["src"]
    flow.dst = record["dst"]
    flow.sport = record["sport"]
    flow.dport = record["dport"]
    flow.ip_version = 6 if ":" in flow.src else 4
    flow.packets_fwd = record["packets_fwd"]
    flow.packets_rev = record["packets_rev"]
    flow.bytes_fwd = record["bytes_fwd"]
    flow.bytes_rev = record["bytes_rev"]
    flow.first_seen = float(record["first_seen"])
    flow.last_seen = float(record["last_seen"])
    state = record.get("tcp_state")
    flow.tcp_state = state if isinstance(state, str) else None
    reason = record.get("end_reason")
    if isinstance(reason, str):
        flow.end_reason = reason
    for key, value in record.items():
        if key not in _CORE:
            flow.set(key, value)


class Collector:
    name = "relay-collector"

    def __init__(self, runtime: Runtime, settings: RelaySettings) -> None:
        self.runtime = runtime
        self.rs = settings
        self.agents: dict[str, AgentState] = {}
        self.flows: OrderedDict[tuple[str, int], Flow] = OrderedDict()
        self.received: dict[str, int] = {}
        self.malformed = 0
        self.oversized = 0
        self.duplicates = 0
        self.ended_total = 0
        self.updates_applied = 0
        self.latencies: deque[float] = deque(maxlen=100_000)
        """Capture-to-state latency of the most recent flow updates (seconds)."""
        self.nc: Client | None = None
        self.connected = False
        self._seen: dict[tuple[str, str], set[int]] = {}
        self._seen_max: dict[tuple[str, str], int] = {}
        self._next_id = -1  # negative ids never clash with the local flow table's
        self._tasks: list[asyncio.Task[None]] = []

    # -- state for panels ---------------------------------------------------------------------
    def remote_flows(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def latency_p99(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    # -- message handling ---------------------------------------------------------------------
    def handle(self, subj: str, data: bytes) -> str | None:
        """Validate and apply one message; returns its kind, or None if it was dropped."""
        try:
            msg = m.decode(data, subj)
        except m.InvalidMessage as exc:
            if len(data) > m.MAX_MESSAGE_BYTES:
                self.oversized += 1
            else:
                self.malformed += 1
            log.debug("dropped relay message on %s: %s", subj, exc)
            return None
        kind = msg["kind"]
        site = msg["site"]
        self.received[kind] = self.received.get(kind, 0) + 1
        agent = self.agents.get(site)
        if agent is None:
            agent = self.agents[site] = AgentState(site=site)
        now = time.time()
        agent.last_heard = now
        agent.messages += 1
        if agent.status != LIVE and kind == "heartbeat":
            agent.status = LIVE
        getattr(self, "_on_" + kind.replace(".", "_"))(agent, msg, now)
        return str(kind)

    def _on_heartbeat(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        agent.last_heartbeat = now
        agent.lag = max(0.0, now - float(msg["ts"]))
        agent.version = str(msg["version"])
        agent.interval = float(msg["interval"]) or 1.0
        for name in ("host", "interface"):
            value = msg.get(name)
            if isinstance(value, str):
                setattr(agent, name, value)
        for name in ("pps", "bps", "cpu"):
            value = msg.get(name)
            if isinstance(value, int | float):
                setattr(agent, name, float(value))
        for name, attr in (
            ("drops", "drops"),
            ("rss", "rss"),
            ("spooled", "spooled"),
            ("flows", "flows_active"),
            ("alerts", "alerts"),
        ):
            value = msg.get(name)
            if isinstance(value, int):
                setattr(agent, attr, value)
        if now - agent._stored_at >= STORE_INTERVAL:
            self._store_agent(agent, now)

    def _store_agent(self, agent: AgentState, now: float) -> None:
        """Keep the agent in the database (the agents table), at most every STORE_INTERVAL."""
        store = self.runtime.features.get("store")
        record = getattr(store, "record_agent", None)
        if not callable(record):
            return
        agent._stored_at = now
        details = {
            "interface": agent.interface,
            "status": agent.status,
            "pps": agent.pps,
            "drops": agent.drops,
            "flows_ended": agent.flows_ended,
            "alerts": agent.alerts,
        }
        try:
            record(
                agent.site,
                address=agent.host,
                version=agent.version,
                details=details,
                seen_at=agent.last_heard,
            )
        except Exception:
            log.exception("storing relay agent %s failed", agent.site)

    def _on_stats(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        agent.packets = msg["packets"]
        agent.bytes = msg["bytes"]

    def _on_flows_update(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        for record in msg["flows"]:
            key = (agent.site, record["id"])
            flow = self.flows.get(key)
            if flow is None:
                flow = flow_from_record(self._next_id, agent.site, record)
                self._next_id -= 1
                self.flows[key] = flow
                if len(self.flows) > MAX_REMOTE_FLOWS:
                    self.flows.popitem(last=False)
            else:
                update_flow(flow, record)
                self.flows.move_to_end(key)
            self.latencies.append(now - flow.last_seen)
        self.updates_applied += len(msg["flows"])

    def _first_time(self, site: str, kind: str, seq: int) -> bool:
        key = (site, kind)
        seen = self._seen.setdefault(key, set())
        if seq in seen:
            self.duplicates += 1
            return False
        seen.add(seq)
        top = max(self._seen_max.get(key, 0), seq)
        self._seen_max[key] = top
        if len(seen) > SEEN_WINDOW:
            floor = top - SEEN_WINDOW // 2
            self._seen[key] = {s for s in seen if s > floor}
        return True

    def _on_flows_ended(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        if not self._first_time(agent.site, "flows.ended", msg["seq"]):
            return
        record = msg["flow"]
        remote_id = record.get("id")
        flow = self.flows.pop((agent.site, remote_id), None) if remote_id is not None else None
        if flow is None:
            flow = flow_from_record(self._next_id, agent.site, record)
            self._next_id -= 1
        else:
            update_flow(flow, record)
        agent.flows_ended += 1
        self.ended_total += 1
        for listener in self.runtime.pipeline.ended_listeners:
            try:
                listener(flow)
            except Exception:
                log.exception("flow-end listener failed on a relayed flow")

    def _on_alerts(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        if not self._first_time(agent.site, "alerts", msg["seq"]):
            return
        agent.alerts += 1
        alert = dict(msg["alert"])
        alerts = self.runtime.features.get("alerts")
        forward = getattr(alerts, "ingest_remote", None)
        if callable(forward):
            forward(agent.site, alert)

    def _on_names(self, agent: AgentState, msg: dict[str, Any], now: float) -> None:
        resolution = self.runtime.features.get("resolution")
        learn = getattr(resolution, "learn_remote_names", None)
        if callable(learn):
            learn(msg["names"])

    # -- liveness -----------------------------------------------------------------------------
    def check_liveness(self, now: float | None = None) -> list[AgentState]:
        """Mark agents late/lost; returns those that just became lost."""
        now = time.time() if now is None else now
        newly_lost = []
        for agent in self.agents.values():
            silent = now - agent.last_heard
            if silent > agent.interval * self.rs.lost_after:
                if agent.status != LOST:
                    agent.status = LOST
                    newly_lost.append(agent)
            elif silent > agent.interval * self.rs.late_after:
                agent.status = LATE
            # message rate over the last check interval
            t0, n0 = agent._rate_mark
            if t0:
                agent.msg_rate = (agent.messages - n0) / max(now - t0, 1e-6)
            agent._rate_mark = (now, agent.messages)
        for agent in newly_lost:
            self._raise_lost(agent, now)
            self._store_agent(agent, now)
        return newly_lost

    def _raise_lost(self, agent: AgentState, now: float) -> None:
        evidence = {
            "site": agent.site,
            "host": agent.host,
            "last_heard": agent.last_heard,
            "silent_seconds": round(now - agent.last_heard, 1),
        }
        log.warning("relay agent %s lost (silent %.0f s)", agent.site, now - agent.last_heard)
        alerts = self.runtime.features.get("alerts")
        raise_alert = getattr(alerts, "raise_alert", None)
        if callable(raise_alert):
            try:
                raise_alert(
                    kind="relay.agent_lost",
                    severity="high",
                    entities={"site": agent.site, "host": agent.host},
                    evidence=evidence,
                    summary=f"relay agent {agent.site} ({agent.host}) stopped sending heartbeats",
                )
            except Exception:
                log.exception("raising the agent-lost alert failed")

    # -- the service --------------------------------------------------------------------------
    async def _subscribe(self, nc: Client) -> None:
        for kind in ("heartbeat", "stats", "flows.update", "names"):
            await nc.subscribe(f"{m.SUBJECT_ROOT}.*.{kind}", cb=self._on_core)
        js = nc.jetstream()
        await ensure_stream(js)
        for kind in m.DURABLE_KINDS:
            durable = f"{self.rs.durable_name}-{kind.replace('.', '-')}"
            sub = await js.pull_subscribe(
                f"{m.SUBJECT_ROOT}.*.{kind}", durable=durable, stream=m.STREAM_NAME
            )
            self._tasks.append(asyncio.ensure_future(self._pull(sub)))

    async def _on_core(self, msg: Msg) -> None:
        self.handle(msg.subject, msg.data)

    async def _pull(self, sub: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        while True:
            try:
                batch = await sub.fetch(256, timeout=0.5)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: nats-py reconnects, we retry
                log.debug("fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in batch:
                self.handle(msg.subject, msg.data)
                with contextlib.suppress(Exception):
                    await msg.ack()

    async def run(self) -> None:
        delay = 0.5
        while self.nc is None:
            try:
                self.nc = await connect(self.rs)
            except RelayAuthError:
                raise
            except RelayError as exc:
                self.runtime.status_warnings["relay"] = f"relay: {exc}"
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
        self.runtime.status_warnings.pop("relay", None)
        await self._subscribe(self.nc)
        # Connected means receiving: only once the server has the subscriptions (a round trip
        # after them) would a message an agent sends now reach us.
        await self.nc.flush()
        self.connected = True
        try:
            while True:
                await asyncio.sleep(0.5)
                self.check_liveness()
                self.connected = self.nc.is_connected
                if not self.connected:
                    self.runtime.status_warnings["relay"] = "relay: disconnected"
                else:
                    self.runtime.status_warnings.pop("relay", None)
        finally:
            for task in self._tasks:
                task.cancel()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
