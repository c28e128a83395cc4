"""The trace feature (dashboard only): traces the start-up targets (`-t TARGET`, [trace] targets)
and whatever the user asks for later (Enter on flows in the Traffic panel), round after round,
each target in its own task. Panels read `targets` and `message`; they never wait for it.

Without raw-socket permission the feature says so in one line (`message`, and the status bar)
and the rest of the dashboard keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable
from typing import Any

from packettracer.model.trace import TargetState, remote_ends
from packettracer.services.runtime import Runtime
from packettracer.services.trace_session import TraceSession
from packettracer.services.tracer import TraceError, TracePermissionError, can_trace

log = logging.getLogger(__name__)

WARNING_KEY = "trace"


@functools.lru_cache(maxsize=1)
def local_addresses() -> set[str]:
    """This host's addresses (a flow's end that is one of them is not the remote end)."""
    try:
        from packettracer.capture.interfaces import list_interfaces

        interfaces = list_interfaces()
    except Exception:
        return set()
    return {a.split("/")[0] for i in interfaces for a in (*i.ipv4, *i.ipv6)}


class TraceFeature:
    name = "trace"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.trace
        self.session: TraceSession | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._queued: list[str] = list(dict.fromkeys(self.settings.targets))
        self._running = False
        self.message: str | None = None
        """One line when tracing cannot run (no raw-socket permission)."""
        self.events: list[str] = []
        """Route changes and RTT shifts, newest last (for the status line)."""

    def attach(self, runtime: Runtime) -> None:
        runtime.add_service(self)

    def _make_session(self) -> TraceSession:
        features = self.runtime.features
        store = features.get("store")
        record = None
        history = None
        if store is not None and hasattr(store, "record_trace"):

            def record(row: dict[str, Any]) -> None:
                store.record_trace(**row)

            if hasattr(store, "trace_history"):

                def history(target: str) -> list[dict[str, Any]]:
                    rows: list[dict[str, Any]] = store.trace_history(target, limit=20)
                    return rows

        session = TraceSession(
            self.settings,
            resolution=features.get("resolution"),
            alerts=features.get("alerts"),
            record=record,
            history=history,
        )
        session.on_event = self._event
        return session

    def _event(self, text: str) -> None:
        self.events.append(text)
        del self.events[:-50]

    @property
    def targets(self) -> list[TargetState]:
        if self.session is None:
            return [TargetState(t, t, self.settings.proto) for t in self._queued]
        return list(self.session.targets.values())

    def trace(self, target: str) -> None:
        """Start tracing `target` (no-op if it is traced already). Safe from the UI thread."""
        if self._running:
            if target not in self._tasks or self._tasks[target].done():
                self._tasks[target] = asyncio.get_running_loop().create_task(
                    self._follow(target), name=f"trace {target}"
                )
        elif target not in self._queued:
            self._queued.append(target)

    def trace_flows(self, flows: Iterable[Any]) -> list[str]:
        """Trace the remote ends of `flows` (anything with `src` and `dst`); returns them."""
        targets = remote_ends(((f.src, f.dst) for f in flows), local_addresses())
        for target in targets:
            self.trace(target)
        return targets

    def stop(self, target: str) -> None:
        task = self._tasks.pop(target, None)
        if task is not None:
            task.cancel()
        if self.session is not None:
            self.session.remove(target)

    async def _follow(self, target: str) -> None:
        assert self.session is not None
        if self.message is not None:
            return
        try:
            await self.session.add(target)
        except TracePermissionError as exc:
            self._refuse(str(exc))
            return
        except TraceError:
            return  # kept in the target's state: the panel shows it
        while True:
            try:
                await self.session.round(target)
                state = self.session.targets.get(target)
                if state is not None:
                    state.error = None  # a passing failure (no route for a moment) is over
            except TracePermissionError as exc:
                self._refuse(str(exc))
                return
            except TraceError as exc:
                state = self.session.targets.get(target)
                if state is not None:
                    state.error = str(exc)
            await asyncio.sleep(self.settings.interval)

    def _refuse(self, message: str) -> None:
        self.message = message
        self.runtime.status_warnings[WARNING_KEY] = message

    async def run(self) -> None:
        self.session = self._make_session()
        self._running = True
        reason = can_trace()
        if reason is not None:
            self._refuse(reason)
        for target in self._queued:
            self.trace(target)
        self._queued.clear()
        await asyncio.Event().wait()

    async def close(self) -> None:
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.session is not None:
            self.session.close()


def make_feature(runtime: Runtime, mode: str) -> TraceFeature | None:
    """FEATURE_FACTORIES entry: the dashboard traces; report and agent do not."""
    if mode != "dashboard":
        return None
    return TraceFeature(runtime)
