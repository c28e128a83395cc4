"""The agent side of the relay: publishes what the local pipeline learns to NATS.

Durable messages (ended flows, alerts) carry a per-site sequence number and a `Nats-Msg-Id`
header (JetStream drops duplicates), go to the JetStream stream, and wait in the on-disk spool
while the server is unreachable; they are replayed in order on reconnect. Periodic messages
(heartbeats, stats, flow updates) are best effort: they describe the present, so a stale one is
worth nothing. The agent only publishes; it subscribes to nothing and accepts no commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from packettracer import __version__
from packettracer.config import RelaySettings
from packettracer.model.flows import Flow
from packettracer.services.relay import messages as m
from packettracer.services.relay.connection import RelayAuthError, RelayError, connect
from packettracer.services.relay.spool import Spool
from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)

UPDATE_BATCH = 500  # flows per flows.update message (keeps messages far below the size cap)
PUBLISH_CONCURRENCY = 128


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream that holds durable subjects, if it is not there yet."""
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(m.STREAM_NAME)
        return
    except NotFoundError:
        pass
    with contextlib.suppress(Exception):  # another agent may have created it meanwhile
        await js.add_stream(
            name=m.STREAM_NAME,
            subjects=m.durable_subjects(),
            max_age=7 * 24 * 3600,
            duplicate_window=600,
        )


class AgentPublisher:
    name = "relay-agent"

    def __init__(self, runtime: Runtime, settings: RelaySettings) -> None:
        if not m.SITE_RE.match(settings.site or ""):
            raise RelayError(
                f"agent: bad or missing --site {settings.site!r}",
                "use letters, digits, '-' and '_' (at most 64)",
            )
        self.runtime = runtime
        self.rs = settings
        self.site = settings.site
        spool_path = Path(settings.spool_dir) / f"{self.site}.sqlite"
        self.spool = Spool(spool_path)
        self.pending: deque[tuple[str, str, bytes]] = deque()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.connected = False
        self.published = 0
        self.publish_errors = 0
        self.started = time.time()
        self._wake = asyncio.Event()
        self._last_cpu = (time.monotonic(), _cpu_seconds())
        self._flow_marks: dict[int, tuple[int, float]] = {}
        self._stream_checked = False
        runtime.pipeline.on_flow_end(self._flow_ended)

    # -- durable messages -------------------------------------------------------------------
    def _durable(self, kind: str, body: dict[str, Any]) -> None:
        seq = self.spool.next_seq(f"seq:{kind}")
        body = {"seq": seq, "ts": time.time(), **body}
        subj = m.subject(self.site, kind)
        self.pending.append((subj, f"{self.site}:{kind}:{seq}", m.encode(kind, self.site, body)))
        self._wake.set()

    def _flow_ended(self, flow: Flow) -> None:
        self._flow_marks.pop(flow.id, None)
        record = _flow_record(flow, self.runtime.flow_defaults)
        record["id"] = flow.id
        self._durable("flows.ended", {"flow": record})

    def publish_alert(self, alert: dict[str, Any]) -> None:
        """Called for each alert the local alert engine raises."""
        self._durable("alerts", {"alert": alert})

    # -- periodic messages ------------------------------------------------------------------
    def _heartbeat(self) -> dict[str, Any]:
        now = time.monotonic()
        cpu = _cpu_seconds()
        last_now, last_cpu = self._last_cpu
        self._last_cpu = (now, cpu)
        capture = self.runtime.capture
        stats = self.runtime.pipeline.stats
        return {
            "ts": time.time(),
            "version": __version__,
            "host": socket.gethostname(),
            "interface": self.runtime.source_description,
            "interval": self.rs.heartbeat_interval,
            "pps": round(stats.pps, 1),
            "bps": round(stats.bps, 1),
            "drops": capture.dropped if capture else 0,
            "flows": len(self.runtime.pipeline.flows),
            "cpu": round(100.0 * (cpu - last_cpu) / max(now - last_now, 1e-6), 1),
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "spooled": len(self.spool) + len(self.pending),
            "alerts": self._alert_count(),
        }

    def _alert_count(self) -> int:
        alerts = self.runtime.features.get("alerts")
        count = getattr(alerts, "total_count", None)
        return int(count()) if callable(count) else 0

    def _changed_flows(self) -> list[dict[str, Any]]:
        out = []
        marks = self._flow_marks
        for flow in self.runtime.pipeline.flows:
            packets = flow.packets_fwd + flow.packets_rev
            mark = marks.get(flow.id)
            if mark is not None and mark[0] == packets:
                continue
            marks[flow.id] = (packets, flow.last_seen)
            record = _flow_record(flow)
            record["id"] = flow.id
            out.append(record)
        return out

    async def _publish_heartbeat(self) -> None:
        nc = self.nc
        if nc is None or not nc.is_connected:
            return
        self.runtime.tick()
        beat = m.encode("heartbeat", self.site, self._heartbeat())
        await nc.publish(m.subject(self.site, "heartbeat"), beat)
        stats = self.runtime.pipeline.stats
        body = {
            "ts": time.time(),
            "packets": stats.packets,
            "bytes": stats.bytes,
            "pps": stats.pps,
            "bps": stats.bps,
            "flows": self.runtime.pipeline.flows.created,
        }
        await nc.publish(m.subject(self.site, "stats"), m.encode("stats", self.site, body))

    async def _publish_updates(self) -> None:
        nc = self.nc
        if nc is None or not nc.is_connected:
            return
        changed = self._changed_flows()
        subj = m.subject(self.site, "flows.update")
        for i in range(0, len(changed), UPDATE_BATCH):
            body = {"ts": time.time(), "flows": changed[i : i + UPDATE_BATCH]}
            await nc.publish(subj, m.encode("flows.update", self.site, body))

    # -- the service ------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        """Keep trying to connect; nats-py reconnects by itself once a first connection exists."""
        delay = 0.5
        while self.nc is None:
            try:
                self.nc = await connect(
                    self.rs,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                )
            except RelayAuthError:
                raise
            except RelayError as exc:
                self.runtime.status_warnings["relay"] = f"relay: {exc}; spooling"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.js = self.nc.jetstream()
            await ensure_stream(self.js)
            self._stream_checked = True
            self.connected = True
            self.runtime.status_warnings.pop("relay", None)
            self._wake.set()

    async def _on_disconnect(self) -> None:
        self.connected = False
        self.runtime.status_warnings["relay"] = "relay: disconnected; spooling"

    async def _on_reconnect(self) -> None:
        self.connected = True
        self.runtime.status_warnings.pop("relay", None)
        self._wake.set()

    async def _send_durable(self) -> None:
        """Drain the spool first (order), then what is pending; spool whatever fails."""
        js = self.js
        if js is None or not self.connected:
            self.spool.append(list(self.pending))
            self.pending.clear()
            return
        if len(self.spool):
            self.spool.append(list(self.pending))
            self.pending.clear()
            while len(self.spool) and self.connected:
                rows = self.spool.peek(PUBLISH_CONCURRENCY)
                ok = await self._publish_all(js, [(s, i, p) for _, s, i, p in rows])
                if ok < len(rows):
                    if ok:
                        self.spool.remove_through(rows[ok - 1][0])
                    return
                self.spool.remove_through(rows[-1][0])
            return
        while self.pending and self.connected:
            batch = [
                self.pending.popleft() for _ in range(min(len(self.pending), PUBLISH_CONCURRENCY))
            ]
            ok = await self._publish_all(js, batch)
            if ok < len(batch):
                self.spool.append(batch[ok:] + list(self.pending))
                self.pending.clear()
                return

    async def _publish_all(self, js: JetStreamContext, batch: list[tuple[str, str, bytes]]) -> int:
        """Publish in order with acks awaited together; returns how many leading ones succeeded."""
        results = await asyncio.gather(
            *(js.publish(s, p, timeout=2.0, headers={"Nats-Msg-Id": i}) for s, i, p in batch),
            return_exceptions=True,
        )
        for n, result in enumerate(results):
            if isinstance(result, BaseException):
                self.publish_errors += 1
                self.connected = False
                self._stream_checked = False
                log.info("durable publish failed: %s", result)
                return n
            self.published += 1
        return len(results)

    async def run(self) -> None:
        connector = asyncio.ensure_future(self._connect_loop())
        next_beat = next_update = time.monotonic()
        try:
            while True:
                if connector.done() and connector.exception() is not None:
                    raise connector.exception()  # type: ignore[misc]
                timeout = max(0.0, min(next_beat, next_update) - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 0.2))
                self._wake.clear()
                if not self.connected and self.nc is not None and self.nc.is_connected:
                    self.connected = True
                if self.connected and not self._stream_checked and self.js is not None:
                    with contextlib.suppress(Exception):
                        await ensure_stream(self.js)
                        self._stream_checked = True
                await self._send_durable()
                now = time.monotonic()
                try:
                    # A dropped connection mid-publish is retried at the next interval.
                    if now >= next_beat:
                        next_beat = now + self.rs.heartbeat_interval
                        await self._publish_heartbeat()
                    if now >= next_update:
                        next_update = now + self.rs.update_interval
                        await self._publish_updates()
                except Exception as exc:
                    log.info("periodic publish failed: %s", exc)
        finally:
            connector.cancel()

    async def finish(self) -> None:
        """Flush: push what is pending (or spool it) before the process ends."""
        await self._send_durable()

    async def close(self) -> None:
        if self.pending:
            self.spool.append(list(self.pending))
            self.pending.clear()
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await nc.close()
        self.spool.close()


def _flow_record(flow: Flow, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    record = flow.to_dict(defaults)
    record.pop("site", None)
    return record


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
