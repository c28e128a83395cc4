"""Who owns a public network: RDAP first (the IANA bootstrap registry picks ARIN, RIPE NCC, APNIC,
LACNIC or AFRINIC), WHOIS on port 43 as the fallback.

Result: network name, CIDR, organisation, country, registry, abuse contact, registration date.
Answers are cached (and stored by the store feature) and refreshed after `refresh_days` (7);
failures are remembered for an hour. Only public addresses are ever asked about, at most
`concurrency` at a time, never with -n or --offline. Base URLs and WHOIS hosts come from settings,
so tests point them at local servers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from packettracer.config import Settings
from packettracer.model.addresses import is_public
from packettracer.services.lookup_queue import QueuedLookups

log = logging.getLogger(__name__)

REGISTRIES = ("arin", "ripe", "apnic", "lacnic", "afrinic")
WHOIS_SERVERS = {
    "arin": "whois.arin.net",
    "ripe": "whois.ripe.net",
    "apnic": "whois.apnic.net",
    "lacnic": "whois.lacnic.net",
    "afrinic": "whois.afrinic.net",
}
FAILURE_TTL = 3600.0
MAX_QUEUE = 2000
MAX_RESPONSE = 2 * 1024 * 1024


@dataclass(slots=True)
class Ownership:
    network: str | None = None
    cidr: str | None = None
    org: str | None = None
    country: str | None = None
    registry: str | None = None
    abuse: str | None = None
    registered: str | None = None
    source: str | None = None
    """rdap or whois."""
    fetched_at: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ownership:
        names = set(cls.__slots__)
        return cls(**{k: v for k, v in data.items() if k in names})


def registry_of_url(url: str) -> str | None:
    lowered = url.lower()
    for name in REGISTRIES:
        if name in lowered:
            return name
    return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Bootstrap:
    """The IANA RDAP bootstrap files (RFC 9224): address -> the registry's RDAP base URL."""

    def __init__(self, directory: str = "") -> None:
        self.nets: list[tuple[Network, str]] = []
        self.asns: list[tuple[int, int, str]] = []
        self.publication: dict[str, Any] = {}
        for kind in ("ipv4", "ipv6", "asn"):
            data = self._load(directory, kind)
            self.publication[kind] = data.get("publication")
            for service in data.get("services", []):
                entries, urls = service[0], service[1]
                url = next((u for u in urls if u.startswith("https://")), urls[0] if urls else "")
                if not url:
                    continue
                for entry in entries:
                    if kind == "asn":
                        lo, _, hi = str(entry).partition("-")
                        self.asns.append((int(lo), int(hi or lo), url))
                    else:
                        self.nets.append((ipaddress.ip_network(entry, strict=False), url))
        self.nets.sort(key=lambda item: -item[0].prefixlen)

    @staticmethod
    def _load(directory: str, kind: str) -> dict[str, Any]:
        if directory:
            path = Path(directory).expanduser() / f"{kind}.json"
            text = path.read_text(encoding="utf-8")
        else:
            ref = resources.files("packettracer") / "data" / f"rdap-bootstrap-{kind}.json"
            text = ref.read_text(encoding="utf-8")
        data: dict[str, Any] = json.loads(text)
        return data

    def base_for(self, address: str) -> str | None:
        ip = ipaddress.ip_address(address)
        for net, url in self.nets:
            if net.version == ip.version and ip in net:
                return url
        return None

    def base_for_asn(self, asn: int) -> str | None:
        for lo, hi, url in self.asns:
            if lo <= asn <= hi:
                return url
        return None


# --- RDAP JSON --------------------------------------------------------------------------------


def _vcard(entity: dict[str, Any], key: str) -> str | None:
    card = entity.get("vcardArray")
    if not isinstance(card, list) or len(card) < 2 or not isinstance(card[1], list):
        return None
    for item in card[1]:
        if isinstance(item, list) and len(item) >= 4 and item[0] == key:
            value = item[3]
            if isinstance(value, list):
                value = " ".join(str(v) for v in value if v)
            return str(value) if value else None
    return None


def _walk_entities(entities: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = list(entities) if isinstance(entities, list) else []
    while stack and len(out) < 200:
        entity = stack.pop(0)
        if not isinstance(entity, dict):
            continue
        out.append(entity)
        stack.extend(entity.get("entities") or [])
    return out


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Registry spellings too: "62.239.237.0/32", ARIN's zero-padded "074.125.000.000"."""
    text = text.split("/")[0].strip()
    if "." in text and ":" not in text:
        text = ".".join(str(int(part)) for part in text.split("."))
    return ipaddress.ip_address(text)


def _cidr(data: dict[str, Any]) -> str | None:
    cidrs = data.get("cidr0_cidrs")
    if isinstance(cidrs, list) and cidrs:
        c = cidrs[0]
        prefix = c.get("v4prefix") or c.get("v6prefix")
        if prefix and c.get("length") is not None:
            return f"{prefix}/{c['length']}"
    start, end = data.get("startAddress"), data.get("endAddress")
    if not start or not end:
        return None
    try:
        first = _address(str(start))
        last = _address(str(end))
        nets = list(ipaddress.summarize_address_range(first, last))
    except (ValueError, TypeError):
        return None
    return ", ".join(str(n) for n in nets[:3]) if nets else None


def parse_rdap(data: dict[str, Any], registry: str | None = None) -> Ownership:
    entities = _walk_entities(data.get("entities"))
    org = None
    abuse = None
    for entity in entities:
        roles = entity.get("roles") or []
        if org is None and "registrant" in roles:
            org = _vcard(entity, "org") or _vcard(entity, "fn")
        if abuse is None and "abuse" in roles:
            abuse = _vcard(entity, "email")
    if org is None:
        for entity in entities:
            if _vcard(entity, "kind") == "org":
                org = _vcard(entity, "fn")
                break
    if org is None:
        # RIPE and APNIC put the holder's description in the network's remarks (WHOIS descr)
        for remark in data.get("remarks") or []:
            lines = remark.get("description") if isinstance(remark, dict) else None
            if isinstance(lines, list) and lines and isinstance(lines[0], str):
                org = lines[0]
                break
    registered = None
    for event in data.get("events") or []:
        if isinstance(event, dict) and event.get("eventAction") == "registration":
            registered = str(event.get("eventDate") or "")[:10] or None
    port43 = data.get("port43")
    if registry is None and isinstance(port43, str):
        registry = registry_of_url(port43)
    return Ownership(
        network=data.get("name"),
        cidr=_cidr(data),
        org=org,
        country=data.get("country"),
        registry=registry,
        abuse=abuse,
        registered=registered,
        source="rdap",
    )


# --- WHOIS text -------------------------------------------------------------------------------

_ABUSE_LINE = re.compile(r"Abuse contact for .* is '([^']+)'")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def parse_whois(text: str, registry: str | None = None) -> Ownership:
    """RPSL (RIPE, APNIC, AFRINIC, LACNIC) and ARIN's key: value output; the first object wins."""
    fields: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("%", "#")) or ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if value and key not in fields:
            fields[key] = value
    out = Ownership(registry=registry, source="whois")
    out.network = fields.get("netname")
    out.cidr = fields.get("cidr") or fields.get("inetnum") or fields.get("inet6num")
    if out.cidr and " - " in out.cidr:
        lo, _, hi = out.cidr.partition(" - ")
        try:
            nets = ipaddress.summarize_address_range(
                ipaddress.ip_address(lo.strip()),
                ipaddress.ip_address(hi.strip()),
            )
            out.cidr = ", ".join(str(n) for n in list(nets)[:3])
        except (ValueError, TypeError):
            pass
    out.org = fields.get("orgname") or fields.get("org-name") or fields.get("owner")
    out.org = out.org or fields.get("descr")
    out.country = fields.get("country")
    match = _ABUSE_LINE.search(text)
    out.abuse = (
        (match.group(1) if match else None)
        or fields.get("orgabuseemail")
        or fields.get("abuse-mailbox")
    )
    if out.abuse is None:
        remark = next((v for k, v in fields.items() if k == "remarks" and "abuse" in v), None)
        found = _EMAIL.search(remark) if remark else None
        out.abuse = found.group(0) if found else None
    created = fields.get("regdate") or fields.get("created")
    if created:
        digits = created.replace("-", "")
        out.registered = (
            f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if digits[:8].isdigit() else created
        )
    return out


# --- the service ------------------------------------------------------------------------------


class OwnershipService(QueuedLookups):
    name = "ownership"

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        os_ = settings.ownership
        rs = settings.resolve
        self.enabled = os_.enabled and rs.enabled and not rs.offline
        self.bootstrap = Bootstrap(os_.bootstrap_dir)
        self.rdap_base = os_.rdap_base
        self.whois_servers = {**WHOIS_SERVERS, **os_.whois_servers}
        self.refresh = os_.refresh_days * 86400.0
        self.timeout = os_.timeout
        self.concurrency = max(1, os_.concurrency)
        self.clock = clock
        self._client = client
        self.cache: OrderedDict[str, Ownership] = OrderedDict()
        self.cache_size = 10_000
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()
        self.in_flight = 0
        self.rdap_queries = 0
        self.whois_queries = 0
        self.on_result: list[Callable[[str, Ownership], Any]] = []

    def peek(self, address: str) -> Ownership | None:
        return self.cache.get(address)

    def warm(self, address: str, info: Ownership) -> None:
        self.cache[address] = info

    def lookup(self, address: str) -> Ownership | None:
        """Cached owner of `address`; stale or unknown ones are queued for a fresh look-up."""
        info = self.cache.get(address)
        fresh = info is not None and (
            self.clock() - info.fetched_at < (FAILURE_TTL if info.error else self.refresh)
        )
        if not fresh and self.enabled and is_public(address) and address not in self._queue:
            self._queue[address] = None
            if len(self._queue) > MAX_QUEUE:
                self._queue.popitem(last=False)  # the oldest wish goes; it is asked again later
            self._wake.set()
        return info

    def _rdap_url(self, address: str) -> tuple[str | None, str | None]:
        base = self.bootstrap.base_for(address)
        registry = registry_of_url(base) if base else None
        if self.rdap_base:
            base = self.rdap_base.replace("{registry}", registry or "unknown")
        if base is None:
            return None, registry
        return base.rstrip("/") + "/ip/" + address, registry

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=True, trust_env=False
            )
        return self._client

    async def rdap(self, address: str) -> Ownership | None:
        url, registry = self._rdap_url(address)
        if url is None:
            return None
        self.rdap_queries += 1
        client = await self._http()
        resp = await client.get(url, headers={"Accept": "application/rdap+json"})
        if resp.status_code != 200 or len(resp.content) > MAX_RESPONSE:
            raise OSError(f"RDAP HTTP {resp.status_code}")
        data = resp.json()
        if not isinstance(data, dict):
            raise ValueError("RDAP answer is not an object")
        return parse_rdap(data, registry)

    async def whois(self, address: str, registry: str) -> Ownership:
        server = self.whois_servers.get(registry) or WHOIS_SERVERS["arin"]
        host, _, port = server.partition(":")
        query = f"n + {address}" if registry == "arin" else address
        self.whois_queries += 1
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port or 43)), self.timeout
        )
        try:
            writer.write(query.encode("ascii") + b"\r\n")
            await writer.drain()
            chunks: list[bytes] = []
            size = 0
            while size < MAX_RESPONSE:
                chunk = await asyncio.wait_for(reader.read(65536), self.timeout)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        return parse_whois(b"".join(chunks).decode("utf-8", "replace"), registry)

    async def resolve(self, address: str) -> Ownership:
        """RDAP, then WHOIS; the outcome (or the failure) is cached."""
        if not is_public(address):
            return Ownership(error="not a public address")
        base = self.bootstrap.base_for(address)
        registry = registry_of_url(base) if base else "arin"
        result: Ownership | None = None
        errors = []
        self.in_flight += 1
        try:
            try:
                result = await asyncio.wait_for(self.rdap(address), self.timeout + 1.0)
            except (httpx.HTTPError, OSError, ValueError, TimeoutError) as exc:
                errors.append(f"rdap: {exc or type(exc).__name__}")
            if result is None or (result.network is None and result.org is None):
                try:
                    result = await self.whois(address, registry or "arin")
                except (OSError, TimeoutError, UnicodeError) as exc:
                    errors.append(f"whois: {exc or type(exc).__name__}")
        finally:
            self.in_flight -= 1
        if result is None:
            result = Ownership(registry=registry, error="; ".join(errors) or "no answer")
        result.fetched_at = self.clock()
        self.cache[address] = result
        self.cache.move_to_end(address)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        for listener in self.on_result:
            try:
                listener(address, result)
            except Exception:
                log.exception("ownership listener failed")
        return result

    async def drain(self, seconds: float = 10.0) -> None:
        await super().drain(seconds)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
