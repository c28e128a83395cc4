"""The Runtime: every service of one PacketTracer process, built the same way for the dashboard,
`report` and `agent`. The dashboard reads its state on a timer; nothing here imports Textual."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from packettracer.capture.source import PacketSource
from packettracer.config import Settings
from packettracer.model.flows import Flow
from packettracer.services.capture import CaptureService
from packettracer.services.pipeline import Pipeline

log = logging.getLogger(__name__)


class Service(Protocol):
    """A long-lived async service. `run()` returns when the service is done or is cancelled."""

    name: str

    async def run(self) -> None: ...


class Runtime:
    """Holds the pipeline, the capture and the feature services, and runs them."""

    def __init__(
        self,
        settings: Settings,
        source: PacketSource | None = None,
        userspace_filter: str | None = None,
    ) -> None:
        self.settings = settings
        # Live sources filter in the kernel; files (and relayed frames) are filtered here.
        self.pipeline = Pipeline(settings, bpf_filter=userspace_filter)
        self.capture: CaptureService | None = None
        if source is not None:
            self.capture = CaptureService(
                source, self.pipeline, max_batches=settings.capture.queue_batches
            )
        self.services: list[Service] = []
        self.clock: Callable[[], float] = time.time
        """Wall-clock "now" for displays (elapsed time, ages); fixed in deterministic snapshots."""
        self.started_at = self.clock()
        self.tick_interval: float | None = None
        """Deterministic runs: every tick counts as this many seconds, whatever the wall clock
        did, so rates (and the peaks kept from them) do not depend on the machine's speed."""
        self.errors: list[str] = []
        """Service failures, shown in the status bar."""
        self.status_warnings: dict[str, str] = {}
        """Current warnings by source (e.g. 'store': 'disk full'), shown in the status bar."""
        self._tasks: list[asyncio.Task[None]] = []
        self._last_tick = time.monotonic()
        # Feature services attach themselves here by name (store, resolver, dpi, alerts, ...).
        self.features: dict[str, Any] = {}
        self.flow_defaults: dict[str, Any] = {}
        """Fields an ended flow is written out with (report, database, relay) when it has no
        value of its own, added to by features: the DPI's unknown verdict, which it leaves out
        of the flows it could say nothing about (most flows of a scan)."""
        # Flows that do not come from the local pipeline (relayed from remote agents).
        self.flow_providers: list[Callable[[], Iterable[Flow]]] = []

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    def all_flows(self) -> Iterator[Flow]:
        """Every active flow: the local pipeline's, then each provider's (remote sites)."""
        if not (self.settings.relay.only and self.flow_providers):
            yield from self.pipeline.flows
        for provider in self.flow_providers:
            yield from provider()

    def feature(self, name: str) -> Any:
        return self.features.get(name)

    @property
    def source_description(self) -> str:
        return self.capture.source.description if self.capture else "-"

    def tick(self, force: bool = False) -> None:
        """Refresh rates; called by whoever displays them (the dashboard timer, the agent).
        At most every half second, unless `force` (a snapshot settling its final figures)."""
        now = time.monotonic()
        interval = now - self._last_tick
        if interval < 0.5 and not force:
            return
        interval = max(interval, 1e-3)
        if self.tick_interval is not None:
            interval = self.tick_interval
        self._last_tick = now
        self.pipeline.stats.tick(interval)
        flows = self.pipeline.flows
        if self.capture is not None and getattr(self.capture.source, "live", True):
            # Live traffic may stop: expire idle flows by the clock, not only on new packets.
            flows.expire(max(flows.now, time.time()))
        flows.tick(interval)
        self.pipeline.tick()

    async def _guard(self, service: Service) -> None:
        try:
            await service.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # One line for the user (the status bar shows it too); the traceback with -vv.
            log.error("service %s failed: %s", service.name, exc)
            log.debug("service %s failure", service.name, exc_info=True)
            self.errors.append(f"{service.name}: {exc}")

    def start(self) -> None:
        """Start the capture and every service as tasks of the running loop."""
        loop = asyncio.get_running_loop()
        if self.capture is not None:
            self._tasks.append(loop.create_task(self._guard(self.capture), name="capture"))
        for service in self.services:
            self._tasks.append(loop.create_task(self._guard(service), name=service.name))

    async def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        # Services marked `close_last` (the database writer) close after every other one, so
        # that what the others flush while closing is still written.
        ordered = sorted(self.services, key=lambda s: bool(getattr(s, "close_last", False)))
        closers = [getattr(s, "close", None) for s in ordered]
        for close in closers:
            if close is None:
                continue
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("closing a service failed")
