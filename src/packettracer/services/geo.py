"""Geolocation: country, city, AS number and name, ISP of an address.

Sources, in the order their answers are trusted:
1. private and reserved ranges get their label (LAN, loopback, CGNAT, ...) and nothing else;
2. `.mmdb` files (MaxMind GeoLite2/GeoIP2 City, Country, ASN, ISP; DB-IP and IPinfo files) read
   with `maxminddb`: from --geoip-db / [geo] geoip_db, and the usual directories;
3. the offline database that ships with the `geoip2fast` package (country and AS name, for IPv4
   and IPv6; no city, no AS number);
4. ip-api.com (city, ISP, AS number) only when [geo] online is set, resolve.enabled and not
   --offline; asked in the background, answers land in the cache for the next refresh.

`lookup()` answers from the cache or the offline sources at once (microseconds) and never waits
for the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from packettracer.config import HOME_DIR, Settings
from packettracer.errors import PacketTracerError
from packettracer.model.addresses import classify
from packettracer.services.ipapi import BATCH_MAX, IpApiClient, parse_as

log = logging.getLogger(__name__)

DEFAULT_DIRS = (Path("/usr/share/GeoIP"), Path("/var/lib/GeoIP"), HOME_DIR)
GEOIP2FAST_FILES = {"asn": "geoip2fast-asn-ipv6.dat.gz", "country": "geoip2fast-ipv6.dat.gz"}


class GeoDbError(PacketTracerError):
    """A configured geolocation database that cannot be used."""


@dataclass(slots=True)
class GeoInfo:
    country: str | None = None
    """ISO 3166 code (GB, US, ...)."""
    country_name: str | None = None
    city: str | None = None
    asn: int | None = None
    as_org: str | None = None
    isp: str | None = None
    label: str | None = None
    """Reserved-range label (LAN, loopback, ...) for addresses that are not public."""
    sources: list[str] = field(default_factory=list)

    def fill(self, other: GeoInfo) -> None:
        """Take the fields this one lacks from `other`."""
        changed = False
        for f in fields(self):
            if f.name == "sources":
                continue
            if getattr(self, f.name) is None and getattr(other, f.name) is not None:
                setattr(self, f.name, getattr(other, f.name))
                changed = True
        if changed:
            self.sources.extend(s for s in other.sources if s not in self.sources)

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "sources")

    @property
    def org(self) -> str | None:
        """The owner to show: AS organisation, else ISP."""
        return self.as_org or self.isp

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeoInfo:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class OfflineGeo:
    """The geoip2fast data shipped in its wheel (GeoLite2-derived)."""

    def __init__(self, data: str = "asn") -> None:
        self.data = data
        self._db: Any = None
        self.info: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._db is not None

    def load(self) -> None:
        if self.data not in GEOIP2FAST_FILES:
            return
        with self._lock:
            if self._db is not None or self.error is not None:
                return
            try:
                from geoip2fast import GeoIP2Fast

                db = GeoIP2Fast(geoip2fast_data_file=GEOIP2FAST_FILES[self.data], verbose=False)
                self.info = dict(db.get_database_info())
                self._db = db
            except Exception as exc:  # a broken install must not stop the analyzer
                self.error = f"geoip2fast: {exc}"
                log.warning("offline geo data unavailable: %s", exc)

    def lookup(self, address: str) -> GeoInfo | None:
        db = self._db
        if db is None:
            return None
        r = db.lookup(address)
        code = getattr(r, "country_code", "") or ""
        if not code or code == "--" or getattr(r, "is_private", False):
            return None
        info = GeoInfo(
            country=code,
            country_name=getattr(r, "country_name", None) or None,
            as_org=getattr(r, "asn_name", None) or None,
            sources=["geoip2fast"],
        )
        return info


def _name(record: Any) -> str | None:
    if isinstance(record, dict):
        names = record.get("names")
        if isinstance(names, dict):
            return names.get("en") or next(iter(names.values()), None)
    return None


def _asn_number(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.upper().removeprefix("AS")
        return int(text) if text.isdigit() else None
    return None


def mmdb_record_to_geo(rec: dict[str, Any], source: str) -> GeoInfo:
    """MaxMind (City/Country/ASN/ISP/Enterprise), DB-IP and IPinfo layouts to one GeoInfo."""
    info = GeoInfo(sources=[source])
    country = rec.get("country")
    if isinstance(country, dict):
        info.country = country.get("iso_code")
        info.country_name = _name(country)
    elif isinstance(country, str):  # IPinfo: "country": "US"
        info.country = country
        info.country_name = rec.get("country_name")
    info.city = _name(rec.get("city")) if isinstance(rec.get("city"), dict) else rec.get("city")
    info.asn = _asn_number(rec.get("autonomous_system_number") or rec.get("asn"))
    info.as_org = rec.get("autonomous_system_organization") or rec.get("as_name")
    info.isp = rec.get("isp") or rec.get("organization")
    traits = rec.get("traits")
    if isinstance(traits, dict):
        info.asn = info.asn or _asn_number(traits.get("autonomous_system_number"))
        info.as_org = info.as_org or traits.get("autonomous_system_organization")
        info.isp = info.isp or traits.get("isp") or traits.get("organization")
    for name in ("country", "country_name", "city", "as_org", "isp"):
        value = getattr(info, name)
        if value is not None and not isinstance(value, str):
            setattr(info, name, None)
    return info


class MmdbGeo:
    """Every usable .mmdb file, asked in order; answers are merged field by field."""

    def __init__(self, paths: list[str], default_dirs: bool = True) -> None:
        import maxminddb

        self.readers: list[tuple[str, Any]] = []
        self.skipped: list[str] = []
        seen: set[str] = set()
        for raw in paths:
            path = Path(raw).expanduser()
            try:
                reader = maxminddb.open_database(str(path))
            except FileNotFoundError:
                raise GeoDbError(f"geoip database {raw}: no such file") from None
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                raise GeoDbError(f"geoip database {raw}: not a usable .mmdb file ({exc})") from None
            seen.add(str(path.resolve()))
            self.readers.append((path.name, reader))
        if default_dirs:
            for directory in DEFAULT_DIRS:
                if not directory.is_dir():
                    continue
                for path in sorted(directory.glob("*.mmdb")):
                    if str(path.resolve()) in seen:
                        continue
                    try:
                        self.readers.append((path.name, maxminddb.open_database(str(path))))
                    except (OSError, ValueError, maxminddb.InvalidDatabaseError):
                        self.skipped.append(str(path))

    def lookup(self, address: str) -> GeoInfo | None:
        out: GeoInfo | None = None
        for name, reader in self.readers:
            try:
                rec = reader.get(address)
            except (ValueError, TypeError):
                continue  # e.g. an IPv6 address in an IPv4-only database
            except Exception:
                continue  # a corrupt data section answers some addresses and not others
            if not isinstance(rec, dict):
                continue
            info = mmdb_record_to_geo(rec, f"mmdb:{name}")
            if out is None:
                out = info
            else:
                out.fill(info)
        return out if out is not None and not out.empty else None

    def close(self) -> None:
        for _, reader in self.readers:
            try:
                reader.close()
            except Exception:
                pass


def ipapi_record_to_geo(rec: dict[str, Any]) -> GeoInfo:
    asn, as_org = parse_as(rec.get("as"))
    return GeoInfo(
        country=rec.get("countryCode") or None,
        country_name=rec.get("country") or None,
        city=rec.get("city") or None,
        asn=asn,
        as_org=as_org or rec.get("asname") or None,
        isp=rec.get("isp") or rec.get("org") or None,
        sources=["ip-api"],
    )


class GeoService:
    """Cached geolocation for the whole process; `run()` does the online part, if allowed."""

    name = "geo"

    def __init__(
        self,
        settings: Settings,
        offline: OfflineGeo | None = None,
        client: IpApiClient | None = None,
        load_in_background: bool = False,
    ) -> None:
        self.settings = settings
        gs = settings.geo
        if gs.offline_data not in (*GEOIP2FAST_FILES, "off"):
            raise GeoDbError(
                f"[geo] offline_data = {gs.offline_data!r}: expected asn, country or off"
            )
        self.offline = offline if offline is not None else OfflineGeo(gs.offline_data)
        self.mmdb = MmdbGeo(gs.geoip_db, gs.search_default_dirs)
        self.cache: OrderedDict[str, GeoInfo] = OrderedDict()
        self.cache_size = settings.resolve.geo_cache_size
        self.online = bool(gs.online and settings.resolve.enabled and not settings.resolve.offline)
        self.client = client
        if self.online and self.client is None:
            rate = min(settings.resolve.geo_rate_limit, gs.batch_rate_limit)
            self.client = IpApiClient(gs.ip_api_url, rate, timeout=gs.timeout)
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._asked: set[str] = set()
        self._wake = asyncio.Event()
        self.on_update: list[Any] = []
        """Callables (address, GeoInfo) told when an online answer arrives (store, flows)."""
        self.lookups = 0
        if load_in_background:
            threading.Thread(target=self.offline.load, name="geo-load", daemon=True).start()
        else:
            self.offline.load()

    def _remember(self, address: str, info: GeoInfo) -> None:
        self.cache[address] = info
        self.cache.move_to_end(address)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def warm(self, address: str, info: GeoInfo) -> None:
        """Seed the cache (from the database at start)."""
        self._remember(address, info)
        if "ip-api" in info.sources:
            self._asked.add(address)

    def peek(self, address: str) -> GeoInfo | None:
        return self.cache.get(address)

    def lookup(self, address: str) -> GeoInfo | None:
        """Geo for `address` now, from cache or offline data; queues an online look-up."""
        info = self.cache.get(address)
        if info is not None:
            self.cache.move_to_end(address)
            return info
        label = classify(address)
        if label is not None:
            info = GeoInfo(label=label, sources=["reserved"])
            self._remember(address, info)
            return info
        self.lookups += 1
        info = self.mmdb.lookup(address) if self.mmdb.readers else None
        offline = self.offline.lookup(address)
        if info is None:
            info = offline
        elif offline is not None:
            info.fill(offline)
        if info is None:
            if (
                not self.offline.loaded
                and self.offline.error is None
                and self.offline.data in (GEOIP2FAST_FILES)
            ):
                return None  # data still loading: ask again later, cache nothing
            info = GeoInfo()
        self._remember(address, info)
        if self.online and address not in self._asked and (info.city is None or info.asn is None):
            self._asked.add(address)
            self._queue[address] = None
            self._wake.set()
        return info

    def _apply(self, address: str, rec: dict[str, Any]) -> GeoInfo:
        online = ipapi_record_to_geo(rec)
        info = self.cache.get(address)
        if info is None:
            info = online
        else:
            # ip-api knows city, ISP and AS number; the offline data stays for what it has
            for name in ("city", "isp", "asn"):
                if getattr(online, name) is not None:
                    setattr(info, name, getattr(online, name))
            info.fill(online)
            if "ip-api" not in info.sources:
                info.sources.append("ip-api")
        self._remember(address, info)
        for listener in self.on_update:
            try:
                listener(address, info)
            except Exception:
                log.exception("geo update listener failed")
        return info

    async def run(self) -> None:
        if not self.online or self.client is None:
            return
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch: list[str] = []
            while self._queue and len(batch) < BATCH_MAX:
                address, _ = self._queue.popitem(last=False)
                batch.append(address)
            answers = await self.client.lookup(batch)
            for address, rec in answers.items():
                self._apply(address, rec)

    async def drain(self, seconds: float = 5.0) -> None:
        """Wait (bounded) until queued online look-ups are done (report mode)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while self._queue and loop.time() < end:  # noqa: ASYNC110 (polls a bounded wait)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.mmdb.close()
