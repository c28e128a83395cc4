"""The relay feature: an agent publisher in `agent` mode; a collector (and optionally a local
nats-server) in the dashboard when `--relay URL` or `--relay-listen` is given."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packettracer.config import HOME_DIR
from packettracer.services.runtime import Runtime

if TYPE_CHECKING:
    # Imported when a relay is configured: the NATS client (and aiohttp under it) costs a
    # noticeable start-up time that `report` and a plain dashboard should not pay.
    from packettracer.services.relay.agent import AgentPublisher
    from packettracer.services.relay.collector import Collector
    from packettracer.services.relay.server import NatsServer

log = logging.getLogger(__name__)


def parse_listen(spec: str) -> tuple[str, int]:
    """'4222', ':4222', '0.0.0.0:4222' or '[::1]:4222' -> (host, port); default 127.0.0.1:4222."""
    host, port = "127.0.0.1", 4222
    spec = spec.strip()
    if spec in ("", "default"):
        return host, port
    if spec.startswith("["):
        h, _, p = spec[1:].partition("]:")
        return h, int(p or port)
    if ":" in spec:
        h, _, p = spec.rpartition(":")
        return (h or host), int(p)
    return host, int(spec)


class RelayFeature:
    name = "relay"

    def __init__(self, runtime: Runtime, mode: str) -> None:
        self.mode = mode
        rs = runtime.settings.relay
        self.server: NatsServer | None = None
        self.agent: AgentPublisher | None = None
        self.collector: Collector | None = None
        if mode == "dashboard" and rs.listen:
            from packettracer.services.relay.server import NatsServer

            host, port = parse_listen(rs.listen)
            store = Path(HOME_DIR) / "nats"
            store.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.server = NatsServer(
                host=host,
                port=port,
                store_dir=str(store),
                token=rs.token,
                user=rs.user,
                password=rs.password,
            )
            self.server.start()
            if not rs.url:
                rs.url = f"nats://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"

    def attach(self, runtime: Runtime) -> None:
        rs = runtime.settings.relay
        if self.mode == "agent":
            from packettracer.services.relay.agent import AgentPublisher

            self.agent = AgentPublisher(runtime, rs)
            runtime.add_service(self.agent)
            alerts = runtime.features.get("alerts")
            subscribe = getattr(alerts, "subscribe", None)
            if callable(subscribe):
                subscribe(self._forward_alert)
        elif rs.url:
            from packettracer.services.relay.collector import Collector

            self.collector = Collector(runtime, rs)
            runtime.add_service(self.collector)
            runtime.flow_providers.append(self.collector.remote_flows)
            if self.mode == "dashboard":
                # The Traffic panel's Site column (UI code: imported only here).
                importlib.import_module("packettracer.screens.relay_columns")

    def _forward_alert(self, alert: Any) -> None:
        if self.agent is None:
            return
        to_dict = getattr(alert, "to_dict", None)
        self.agent.publish_alert(to_dict() if callable(to_dict) else dict(alert))

    async def finish(self) -> None:
        if self.agent is not None:
            await self.agent.finish()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def make_feature(runtime: Runtime, mode: str) -> RelayFeature | None:
    rs = runtime.settings.relay
    if mode == "agent" or (mode == "dashboard" and (rs.url or rs.listen)):
        return RelayFeature(runtime, mode)
    return None
