"""The store feature: attaches the SQLite database to a Runtime and is the one door to it.

Other features find it with ``store = runtime.features.get("store")`` and must tolerate None
(no database in this mode, e.g. ``report`` without ``--db``). Writing never blocks: every call
below only queues a row for the writer thread, which commits in batches (250 ms / 1,000 rows).
Times are epoch seconds; ``None`` means now.

Write API (call from the event loop thread):

    store.upsert_host(ip, name=None, source=None, geo=None, owner=None, learned_at=None)
        one fact about an address: a name (with its source: "dns", "ptr", "sni", "mdns", ...),
        geo (a dict, e.g. {"country": "DE", "city": ..., "lat": ..., "lon": ...}) and/or
        ownership (a dict, e.g. {"asn": 3320, "org": ...}); `source` says where it came from.
    store.record_dns(qname, ts=None, client=None, server=None, qtype=None, rcode=None,
                     answers=None, ttl=None)                  answers: a list (JSON-stored)
    store.record_alert(kind, message, severity="warning", src=None, dst=None, details=None,
                       ts=None, uid=None) -> uid               uid: yours, or a new random one
    store.ack_alert(uid, acked=True, at=None)
    store.record_trace(target, hops, target_ip=None, method=None, started_at=None,
                       finished_at=None, reached=False, details=None, uid=None) -> uid
        hops: [{"ttl": 1, "ip": "192.0.2.1", "rtt_ms": 0.4, "name": ..., <any extra keys>}]
    store.record_agent(name, address=None, version=None, details=None, seen_at=None)
    store.enqueue(kind, row)     the raw form of the above; kinds (store.KINDS): "flows",
        "hosts", "dns", "alerts", "alert_acks", "traces", "agents". It (and the calls that return
        a bool) returns False, counting the row, only when 100,000 rows already wait because
        writes fail.

Ended flows are stored automatically (Flow.to_dict(), extra facts in a JSON column), and so are
the flows still active when the runtime stops (end_reason "exit").

Read API (plain data; each runs a short indexed query on the feature's own reader connection,
so call it from a worker thread, e.g. ``await asyncio.to_thread(store.top_destinations, t)``,
or use ``store.cached(...)`` from a UI timer, which never waits):

    store.load_hosts(since=None, limit=10000) -> [{"ip", "names": [{"name", "source",
        "learned_at"}], "geo", "geo_source", "geo_at", "owner", "owner_source", "owner_at",
        "updated_at"}]                       host knowledge, newest first (cache warm-up)
    store.query_flows(since=None, until=None, host=None, limit=None) -> [flow dicts]
    store.top_destinations(since, limit=50) -> [{"dst", "flows", "packets", "bytes",
        "first_seen", "last_seen"}]
    store.history_summary(since=None) -> {"flows", "packets", "bytes", "sources",
        "destinations", "first_seen", "last_seen", "oldest"}
    store.recent_dns(since, qname=None, limit=1000), store.recent_alerts(since,
        unacked_only=False, limit=1000), store.trace_history(target=None, since=0, limit=100),
    store.agents(since=0)
    store.cached(method_name, *args, window=None, max_age=5.0) -> last result or None;
        refreshes in the background when older than max_age (for panels, which never do I/O);
        with window=S the first argument is "now - S" at each refresh.
    destinations_history_line(runtime) -> str: the Traffic panel's destinations-view note.
    stats_history_line(runtime) -> str: the same for the Stats panel's summary line.

Modes: the dashboard and the agent always store (default ~/.packettracer/data.db, `--db PATH`,
`--db :memory:`). `report` stores only when a database was named explicitly (`--db PATH`, or a
`[store] db_path` in the config file that differs from the default), so analysing a file never
fills the home folder unasked.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from packettracer.config import StoreSettings
from packettracer.model.flows import Flow
from packettracer.services.runtime import Runtime
from packettracer.services.store import (
    KINDS,
    Location,
    Repositories,
    Row,
    connect,
    open_database,
)
from packettracer.services.store.hosts import merge_hosts
from packettracer.services.store.writer import StoreWriter

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = StoreSettings().db_path
HOST_WARMUP_DAYS = 7.0
REPORT_MAX_PENDING = 50_000_000


class StoreFeature:
    name = "store"
    KINDS = KINDS

    def __init__(
        self,
        location: Location,
        conn: sqlite3.Connection,
        retention_days: float = 30,
        **writer_options: Any,
    ) -> None:
        self.location = location
        self.repos = Repositories()
        self.writer = StoreWriter(
            location, conn, self.repos, retention_days=retention_days, **writer_options
        )
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._inflight: dict[tuple[Any, ...], Future[Any]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.writer.after_close = self._close_readers
        self.flows_queued = 0
        self._flow_defaults: dict[str, Any] = {}
        if location.memory:
            # Keeps the shared in-memory database alive for readers even between writes.
            self._reader = connect(location, reader=True)

    # ---- Feature ---------------------------------------------------------------------------

    def attach(self, runtime: Runtime) -> None:
        self.writer.warnings = runtime.status_warnings
        runtime.add_service(self.writer)
        runtime.pipeline.on_flow_end(self._flow_ended)
        # The features' default fields of ended flows (the later features add theirs to it).
        self._flow_defaults = runtime.flow_defaults
        self.writer.before_close = lambda: self._store_active_flows(runtime)

    def _store_active_flows(self, runtime: Runtime) -> None:
        """At exit, flows still active are stored too (end_reason "exit"): a restart must not
        leave a hole in the history. After a report, the pipeline has ended them all already."""
        for flow in list(runtime.pipeline.flows):
            row = flow.to_dict()
            row.pop("_fin", None)  # the flow table's private TCP close bookkeeping
            row.setdefault("end_reason", "exit")
            if self.writer.enqueue("flows", row):
                self.flows_queued += 1

    def _flow_ended(self, flow: Flow) -> None:
        if self.writer.enqueue("flows", flow.to_dict(self._flow_defaults)):
            self.flows_queued += 1

    async def finish(self) -> None:
        """End of a file analysis: wait until everything queued is committed."""
        if not await self.writer.flush():
            log.warning("database %s: not everything could be written", self.location)

    def extend_report(self, runtime: Runtime, result: Any) -> None:
        result.summary["database"] = str(self.location)
        result.summary["stored_flows"] = self.flows_queued
        if self.writer.lost or self.writer.dropped:
            result.warnings.append(
                f"database {self.location}: "
                f"{self.writer.lost + self.writer.dropped} rows not written"
            )

    async def close(self) -> None:
        """Runtime.stop() closes the writer (a service); this is for users of the feature
        without a Runtime (benchmarks, tools)."""
        await self.writer.close()

    def _close_readers(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # ---- write API -------------------------------------------------------------------------

    def enqueue(self, kind: str, row: Row) -> bool:
        return self.writer.enqueue(kind, row)

    def record_flow(self, flow: Row) -> bool:
        return self.writer.enqueue("flows", flow)

    def upsert_host(
        self,
        ip: str,
        name: str | None = None,
        source: str | None = None,
        geo: dict[str, Any] | None = None,
        owner: dict[str, Any] | None = None,
        learned_at: float | None = None,
    ) -> bool:
        return self.writer.enqueue(
            "hosts",
            {
                "ip": ip,
                "name": name,
                "source": source,
                "geo": geo,
                "owner": owner,
                "learned_at": time.time() if learned_at is None else learned_at,
            },
        )

    def record_dns(
        self,
        qname: str,
        ts: float | None = None,
        client: str | None = None,
        server: str | None = None,
        qtype: str | None = None,
        rcode: str | None = None,
        answers: list[Any] | None = None,
        ttl: int | None = None,
    ) -> bool:
        return self.writer.enqueue(
            "dns",
            {
                "ts": time.time() if ts is None else ts,
                "qname": qname,
                "client": client,
                "server": server,
                "qtype": qtype,
                "rcode": rcode,
                "answers": answers,
                "ttl": ttl,
            },
        )

    def record_alert(
        self,
        kind: str,
        message: str,
        severity: str = "warning",
        src: str | None = None,
        dst: str | None = None,
        details: Any = None,
        ts: float | None = None,
        uid: str | None = None,
    ) -> str:
        uid = uid or uuid.uuid4().hex
        self.writer.enqueue(
            "alerts",
            {
                "uid": uid,
                "ts": time.time() if ts is None else ts,
                "kind": kind,
                "message": message,
                "severity": severity,
                "src": src,
                "dst": dst,
                "details": details,
            },
        )
        return uid

    def ack_alert(self, uid: str, acked: bool = True, at: float | None = None) -> bool:
        return self.writer.enqueue(
            "alert_acks",
            {"uid": uid, "acked": acked, "acked_at": time.time() if at is None else at},
        )

    def record_trace(
        self,
        target: str,
        hops: list[Row],
        target_ip: str | None = None,
        method: str | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
        reached: bool = False,
        details: Any = None,
        uid: str | None = None,
    ) -> str:
        uid = uid or uuid.uuid4().hex
        now = time.time()
        self.writer.enqueue(
            "traces",
            {
                "uid": uid,
                "target": target,
                "target_ip": target_ip,
                "method": method,
                "started_at": now if started_at is None else started_at,
                "finished_at": now if finished_at is None else finished_at,
                "reached": reached,
                "details": details,
                "hops": [dict(h) for h in hops],
            },
        )
        return uid

    def record_agent(
        self,
        name: str,
        address: str | None = None,
        version: str | None = None,
        details: Any = None,
        seen_at: float | None = None,
    ) -> bool:
        return self.writer.enqueue(
            "agents",
            {
                "name": name,
                "address": address,
                "version": version,
                "details": details,
                "seen_at": time.time() if seen_at is None else seen_at,
            },
        )

    # ---- read API --------------------------------------------------------------------------

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._reader_lock:
            if self._reader is None:
                self._reader = connect(self.location, reader=True)
            return fn(self._reader)

    def load_hosts(self, since: float | None = None, limit: int = 10_000) -> list[Row]:
        if since is None:
            since = time.time() - HOST_WARMUP_DAYS * 86_400
        start = since

        def query(conn: sqlite3.Connection) -> list[Row]:
            hosts = self.repos.hosts.recent(conn, start, limit)
            names = self.repos.host_names.recent(conn, start, limit * 4)
            return merge_hosts(hosts, names)[:limit]

        result: list[Row] = self._read(query)
        return result

    def query_flows(
        self,
        since: float | None = None,
        until: float | None = None,
        host: str | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        result: list[Row] = self._read(
            lambda c: self.repos.flows.query(c, since, until, host, limit)
        )
        return result

    def top_destinations(self, since: float, limit: int = 50) -> list[Row]:
        result: list[Row] = self._read(lambda c: self.repos.flows.top_destinations(c, since, limit))
        return result

    def history_summary(self, since: float | None = None) -> Row:
        start = time.time() - 86_400 if since is None else since

        def query(conn: sqlite3.Connection) -> Row:
            out = self.repos.flows.summary(conn, start)
            out["since"] = start
            out["oldest"] = self.repos.flows.oldest(conn)
            return out

        result: Row = self._read(query)
        return result

    def recent_dns(self, since: float, qname: str | None = None, limit: int = 1000) -> list[Row]:
        result: list[Row] = self._read(lambda c: self.repos.dns.recent(c, since, qname, limit))
        return result

    def recent_alerts(
        self, since: float, unacked_only: bool = False, limit: int = 1000
    ) -> list[Row]:
        result: list[Row] = self._read(
            lambda c: self.repos.alerts.recent(c, since, unacked_only, limit)
        )
        return result

    def trace_history(
        self, target: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[Row]:
        result: list[Row] = self._read(lambda c: self.repos.traces.history(c, target, since, limit))
        return result

    def agents(self, since: float = 0.0) -> list[Row]:
        result: list[Row] = self._read(lambda c: self.repos.agents.all(c, since))
        return result

    def cached(
        self, method: str, *args: Any, window: float | None = None, max_age: float = 5.0
    ) -> Any:
        """The last result of `method(*args)` (None before the first one is in), refreshed in
        a worker thread when older than `max_age` seconds. Never waits: for UI timers.

        With `window`, the method's first argument is `now - window` at query time (a sliding
        window, e.g. ``store.cached("top_destinations", window=86400)``)."""
        key = (method, window, *args)
        now = time.monotonic()
        entry = self._cache.get(key)
        if (entry is None or now - entry[0] >= max_age) and key not in self._inflight:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
            fn = getattr(self, method)
            if window is not None:
                span = window
                bound = fn

                def fn(*rest: Any) -> Any:
                    return bound(time.time() - span, *rest)

            future = self._pool.submit(fn, *args)
            self._inflight[key] = future
            future.add_done_callback(functools.partial(self._cached_done, key))
        return entry[1] if entry is not None else None

    def _cached_done(self, key: tuple[Any, ...], future: Future[Any]) -> None:
        self._inflight.pop(key, None)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("database query %s failed: %s", key[0], exc)
            return
        self._cache[key] = (time.monotonic(), future.result())
        if len(self._cache) > 64:  # callers with ever-new arguments must not grow it forever
            oldest = min(self._cache, key=lambda k: self._cache[k][0])
            del self._cache[oldest]

    def stats(self) -> dict[str, Any]:
        out = self.writer.stats()
        out["database"] = str(self.location)
        return out


HISTORY_WINDOW = 86_400.0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def destinations_history_line(runtime: Runtime) -> str:
    """One line for the destinations view: what the database holds for the last 24 hours.
    Empty without a store or before the first (background) query has answered."""
    store = runtime.features.get("store")
    if store is None:
        return ""
    summary = store.cached("history_summary", window=HISTORY_WINDOW, max_age=30.0)
    top = store.cached("top_destinations", 1, window=HISTORY_WINDOW, max_age=30.0)
    if not summary or not summary["flows"]:
        return ""  # nothing stored (yet): no line, rather than a row of zeros
    text = f"stored 24h: {summary['destinations']} destinations, {summary['flows']} flows"
    if top:
        text += f"; most bytes: {top[0]['dst']} ({_size(top[0]['bytes'])})"
    return text


def stats_history_line(runtime: Runtime) -> str:
    """One line for the Stats panel: the last 24 hours in the database, and since when it
    holds history. Empty without a store or before the first (background) query answered."""
    store = runtime.features.get("store")
    if store is None:
        return ""
    summary = store.cached("history_summary", window=HISTORY_WINDOW, max_age=30.0)
    if not summary or not summary["flows"]:
        return ""  # nothing stored (yet): no line, rather than a row of zeros
    text = (
        f"stored 24h: {summary['flows']} flows, {_size(summary['bytes'])}, "
        f"{summary['sources']} sources, {summary['destinations']} destinations"
    )
    oldest = summary.get("oldest")
    if oldest:
        text += "; history since " + time.strftime("%Y-%m-%d", time.localtime(oldest))
    return text


def wants_store(settings: StoreSettings, mode: str) -> bool:
    if mode == "report":
        path = settings.db_path.strip()
        return path != DEFAULT_DB_PATH and path != ":memory:"
    return True


def create_store_feature(runtime: Runtime, mode: str) -> StoreFeature | None:
    """FEATURE_FACTORIES entry. Raises StoreError (one line) if the database is unusable."""
    settings = runtime.settings.store
    if not wants_store(settings, mode):
        return None
    location, conn = open_database(settings.db_path)
    options: dict[str, Any] = {}
    if mode == "report":
        # A file is read faster than any disk writes; the report keeps every flow in memory
        # anyway, so here rows wait rather than being refused.
        options["max_pending"] = REPORT_MAX_PENDING
    return StoreFeature(location, conn, retention_days=settings.retention_days, **options)
