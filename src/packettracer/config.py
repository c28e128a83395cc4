"""One typed Settings object: defaults < config file (TOML) < command-line flags.

The file is `~/.packettracer/config.toml` unless `--config FILE` names another. Its tables are the
sections below (`[capture]`, `[flows]`, ...); keys are the field names. Unknown keys and values
of the wrong type are reported as one clear error line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packettracer.errors import ConfigError

HOME_DIR = Path(os.environ.get("PACKETTRACER_HOME", "~/.packettracer")).expanduser()
DEFAULT_CONFIG = HOME_DIR / "config.toml"


@dataclass
class CaptureSettings:
    interface: str | None = None
    """Interface to capture on; None: the interface of the default route."""
    bpf_filter: str | None = None
    """BPF filter expression (tcpdump syntax)."""
    backend: str = "auto"
    """auto (AF_PACKET ring on Linux, else scapy), afpacket, or scapy."""
    read_file: str | None = None
    """Replay this pcap/pcapng file instead of capturing live."""
    realtime: bool = False
    """Replay a file with its original pacing."""
    loop: bool = False
    """Replay the file again and again (the demo)."""
    snaplen: int = 262144
    queue_batches: int = 256
    """Bound of the capture -> pipeline queue, in batches; overflow is counted as drops."""
    batch_size: int = 512
    """Frames handed over per batch."""
    promiscuous: bool = False
    """Also capture traffic not addressed to this host (live capture)."""
    ring_size_mb: int = 32
    """Size of the AF_PACKET receive ring; a larger ring absorbs longer bursts."""


@dataclass
class FlowSettings:
    max_flows: int = 50_000
    """Flows kept in memory; the least recently seen is evicted beyond this."""
    idle_timeout: float = 300.0
    """Seconds without packets after which a flow ends."""
    closed_timeout: float = 10.0
    """Seconds after FIN/RST after which a TCP flow ends."""


@dataclass
class UiSettings:
    refresh_interval: float = 0.1
    """Dashboard refresh period in seconds."""
    theme: str = "textual-dark"
    table_rows: int = 500
    """Rows the flow table shows (the top by the current sort)."""
    export_dir: str = str(HOME_DIR / "exports")
    """Where `e` (rows as CSV), `E` (rows as JSON) and `w` (packets as pcapng) write."""
    ring_packets_per_flow: int = 64
    """Recent packets kept per flow for `w`; 0 keeps none (and copies no packet bytes)."""
    ring_max_bytes: int = 64 * 1024 * 1024
    """Bound on the bytes all flows' packet rings hold together."""


@dataclass
class StoreSettings:
    db_path: str = str(HOME_DIR / "data.db")
    """SQLite database; ':memory:' keeps nothing on disk."""
    retention_days: int = 30


@dataclass
class ResolveSettings:
    enabled: bool = True
    """Active lookups (reverse DNS, online geo, RDAP); -n turns them off."""
    offline: bool = False
    """Never contact a service on the internet."""
    dns_cache_size: int = 5_000
    geo_cache_size: int = 10_000
    geo_rate_limit: int = 45
    """Requests per minute to ip-api.com."""
    nameservers: list[str] = field(default_factory=list)
    """Reverse DNS asks these ("IP" or "IP:PORT") instead of the system resolver."""


@dataclass
class GeoSettings:
    """Geolocation ([geo]): offline data first, ip-api.com only when `online` and not offline."""

    offline_data: str = "asn"
    """Bundled geoip2fast data: asn (country + AS name, ~110 MB RAM), country (~30 MB), off."""
    geoip_db: list[str] = field(default_factory=list)
    """MaxMind / DB-IP / IPinfo .mmdb files (City, Country, ASN, ISP); --geoip-db adds more."""
    search_default_dirs: bool = True
    """Also use the .mmdb files in /usr/share/GeoIP, /var/lib/GeoIP and ~/.packettracer."""
    online: bool = False
    """Ask ip-api.com for city/ISP/AS of public addresses (--online-geo)."""
    ip_api_url: str = "http://ip-api.com/batch"
    batch_rate_limit: int = 15
    """Batch requests per minute (ip-api allows 15; resolve.geo_rate_limit caps it too)."""
    timeout: float = 10.0


@dataclass
class OwnershipSettings:
    """Network ownership ([ownership]): RDAP via the IANA bootstrap, WHOIS port 43 fallback."""

    enabled: bool = True
    """Look up owners of public addresses (still needs resolve.enabled and not offline)."""
    bootstrap_dir: str = ""
    """Directory with IANA bootstrap files ipv4.json/ipv6.json/asn.json; empty: the bundled copy."""
    rdap_base: str = ""
    """Send every RDAP query to this base URL instead of the registry's (tests, mirrors)."""
    whois_servers: dict[str, str] = field(default_factory=dict)
    """Registry -> "host" or "host:port" for WHOIS (arin, ripe, apnic, lacnic, afrinic)."""
    refresh_days: float = 7.0
    timeout: float = 10.0
    concurrency: int = 2


@dataclass
class RelaySettings:
    url: str = ""
    """NATS server of the relay (nats://HOST:4222); empty: no relay."""
    site: str = ""
    """Agent: this capture site's name (letters, digits, - and _)."""
    token: str | None = None
    user: str | None = None
    password: str | None = None
    creds: str | None = None
    """NATS credentials file (JWT + NKey)."""
    nkey_seed: str | None = None
    """File holding an NKey seed."""
    tls_ca: str | None = None
    """CA bundle to verify the server's TLS certificate."""
    listen: str = ""
    """Dashboard: start a local nats-server with JetStream on ADDR:PORT."""
    only: bool = False
    """Dashboard: show relayed flows only (no local capture)."""
    heartbeat_interval: float = 1.0
    update_interval: float = 0.5
    """Agent: seconds between two batches of active-flow updates (bounds their latency)."""
    late_after: float = 3.0
    """Heartbeat intervals without news after which an agent is late."""
    lost_after: float = 10.0
    """Heartbeat intervals without news after which an agent is lost (and an alert raised)."""
    spool_dir: str = str(HOME_DIR / "spool")
    durable_name: str = "collector"
    """Name of the collector's durable JetStream consumers (one per collector)."""


@dataclass
class SecuritySettings:
    """Scan detection thresholds, reputation lists and alert outputs ([security])."""

    enabled: bool = True
    scan_window: float = 60.0
    """Sliding window (seconds) over which distinct ports/hosts are counted."""
    vertical_ports: int = 15
    """Distinct ports on one host from one source that make a vertical scan."""
    horizontal_hosts: int = 15
    """Distinct hosts probed on one port that make a horizontal scan."""
    block_hosts: int = 4
    """Hosts that each got at least `block_ports` distinct ports: a block scan."""
    block_ports: int = 5
    min_ports: int = 5
    """Fewer ports than `vertical_ports` still count when this many failed often enough."""
    failed_ratio: float = 0.5
    """Share of probes without a positive answer a port scan must have (browsing has ~0)."""
    small_scan_failed_ratio: float = 0.6
    """Failure share needed for the `min_ports` rule."""
    sweep_hosts: int = 10
    """Distinct hosts pinged (ICMP echo/timestamp) that make a sweep."""
    arp_sweep_hosts: int = 24
    """Distinct addresses ARP-requested that make an ARP sweep (routers ARP a lot)."""
    max_sources: int = 4096
    """Sources tracked by the scan detector (least recent dropped beyond)."""
    blocklist_dir: str = str(HOME_DIR / "blocklists")
    blocklist_urls: list[str] = field(default_factory=list)
    """Lists `packettracer blocklists update` downloads into blocklist_dir."""
    flag_bogons: bool = True
    """Alert on flows with reserved/unroutable addresses (documentation, class E, ...)."""
    dedup_window: float = 300.0
    """The same kind and entities within this many seconds update one alert."""
    rate_limit: int = 60
    """New alerts of one kind per minute; more are counted, not raised."""
    bell: bool = True
    """Ring the terminal bell for high and critical alerts (dashboard)."""
    jsonl_file: str | None = None
    """Append every alert (and acknowledgement) as one JSON line to this file."""
    webhook_url: str | None = None
    """POST each new alert as JSON to this URL (retried)."""
    webhook_retries: int = 3
    anomaly_alert_score: int = 60
    """Flows whose DPI anomaly score reaches this raise a `dpi.anomaly` alert (0 turns it off)."""


@dataclass
class TraceSettings:
    proto: str = "icmp"
    """Probe type: icmp, udp or tcp."""
    port: int = 0
    """Destination port for udp/tcp probes; 0: 33434 for udp, 80 for tcp."""
    max_ttl: int = 30
    timeout: float = 1.0
    """Seconds to wait for answers after the last probe of a round."""
    probes: int = 3
    """Probes per hop and round."""
    rounds: int = 3
    """Rounds of `packettracer trace` (the dashboard traces until stopped)."""
    interval: float = 10.0
    """Dashboard: seconds between rounds for each target."""
    targets: list[str] = field(default_factory=list)
    """Targets the dashboard traces from the start (`-t TARGET` adds to them)."""
    history: int = 50
    """Paths and route changes kept in memory per target."""
    rtt_shift_ms: float = 20.0
    """An RTT shift is recorded when the RTT leaves the baseline by more than this many ms..."""
    rtt_shift_ratio: float = 0.5
    """...and by more than this fraction of the baseline."""


@dataclass
class DpiSettings:
    enabled: bool = True
    """Application detection, OS fingerprints and anomaly scores (the DPI feature)."""
    inspect_packets: int = 20
    """Packets from the start of each flow that the DPI reads; later packets are not inspected."""
    bad_fingerprints: str | None = None
    """Extra file of known-bad JA4/JA3 fingerprints ("fingerprint label" per line)."""
    fan_out: int = 100
    """Distinct host:port pairs one host may contact before it is flagged as high fan-out."""


@dataclass
class Settings:
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    flows: FlowSettings = field(default_factory=FlowSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    resolve: ResolveSettings = field(default_factory=ResolveSettings)
    geo: GeoSettings = field(default_factory=GeoSettings)
    ownership: OwnershipSettings = field(default_factory=OwnershipSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    trace: TraceSettings = field(default_factory=TraceSettings)
    dpi: DpiSettings = field(default_factory=DpiSettings)
    config_file: str | None = None
    """The file the settings were read from, if any."""

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Settings:
        """Defaults, overridden by the TOML file (the default one only if it exists)."""
        settings = cls()
        explicit = path is not None
        file = Path(path) if path is not None else DEFAULT_CONFIG
        try:
            exists = file.exists()
        except OSError:
            # An unreadable home (a user switched with HOME still /root) holds no config for us;
            # an explicit file is read below and reported as unreadable.
            exists = explicit
        if not exists:
            if explicit:
                raise ConfigError(f"config file {file}: no such file")
            return settings
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {file}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"config file {file}: {exc.strerror}") from None
        settings.apply(data, source=str(file))
        settings.config_file = str(file)
        return settings

    def apply(self, data: dict[str, Any], source: str = "config") -> None:
        """Overlay a nested mapping of {section: {key: value}} onto these settings."""
        for section, values in data.items():
            target = getattr(self, section, None)
            if not dataclasses.is_dataclass(target) or not isinstance(values, dict):
                known = ", ".join(sorted(self._section_names()))
                raise ConfigError(f"{source}: unknown section [{section}] (known: {known})")
            _apply_section(target, values, f"{source}: [{section}]")

    def _section_names(self) -> list[str]:
        return [
            f.name
            for f in dataclasses.fields(self)
            if dataclasses.is_dataclass(getattr(self, f.name))
        ]


def _apply_section(target: Any, values: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(names))})")
        setattr(target, key, _coerce(value, hints[key], f"{where} {key}"))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        obj = hint()
        _apply_section(obj, value, where)
        return obj
    return value
