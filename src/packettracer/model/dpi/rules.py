"""The DPI's rules as data: protocols (category, encryption, well-known ports) and applications
(category, domain suffixes), read once from the TOML tables in `packettracer/data/`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from packettracer.model.dpi.categories import ALL_CATEGORIES, UNKNOWN

TCP = 6
UDP = 17


@dataclass(frozen=True, slots=True)
class AppInfo:
    name: str
    category: str
    encrypted: bool = False


def _load(name: str) -> dict[str, Any]:
    text = resources.files("packettracer").joinpath("data", name).read_text(encoding="utf-8")
    return tomllib.loads(text)


class Rules:
    """Lookup tables built from the data files; one shared instance (`rules()`)."""

    def __init__(self, protocols: dict[str, Any], apps: dict[str, Any]) -> None:
        self.protocols: dict[str, AppInfo] = {}
        self.apps: dict[str, AppInfo] = {}
        # (proto number, port) -> protocol name, for the last-resort guess.
        self.ports: dict[tuple[int, int], str] = {}
        # domain suffix -> application name
        self.domains: dict[str, str] = {}
        for name, row in protocols.get("protocol", {}).items():
            category = row.get("category", UNKNOWN)
            if category not in ALL_CATEGORIES:
                raise ValueError(f"protocol {name}: unknown category {category!r}")
            self.protocols[name] = AppInfo(name, category, bool(row.get("encrypted", False)))
            for spec in row.get("ports", []):
                transport, _, ports = spec.partition("/")
                number = TCP if transport == "tcp" else UDP
                low, _, high = ports.partition("-")
                for port in range(int(low), int(high or low) + 1):
                    self.ports.setdefault((number, port), name)
        for name, row in apps.get("app", {}).items():
            category = row.get("category", UNKNOWN)
            if category not in ALL_CATEGORIES:
                raise ValueError(f"app {name}: unknown category {category!r}")
            self.apps[name] = AppInfo(name, category, bool(row.get("encrypted", False)))
            for domain in row.get("domains", []):
                self.domains[domain.lower().strip(".")] = name
        # One lookup for `info` (applications win over protocols of the same name).
        self._info: dict[str, AppInfo] = {**self.protocols, **self.apps}
        self._info_limit = len(self._info) + 4096

    def app_for_name(self, host: str) -> str | None:
        """The application of a host name by its most specific known suffix."""
        host = host.lower().rstrip(".")
        if not host:
            return None
        domains = self.domains
        hit = domains.get(host)
        if hit is not None:
            return hit
        pos = host.find(".")
        while pos >= 0:
            hit = domains.get(host[pos + 1 :])
            if hit is not None:
                return hit
            pos = host.find(".", pos + 1)
        return None

    def port_guess(self, proto: int, sport: int, dport: int) -> str | None:
        """A protocol guessed from the ports alone (server port first)."""
        ports = self.ports
        hit = ports.get((proto, dport))
        if hit is None:
            hit = ports.get((proto, sport))
        return hit

    def info(self, name: str) -> AppInfo:
        """Category and encryption of an application or protocol name."""
        hit = self._info.get(name)
        if hit is None:
            hit = AppInfo(name, UNKNOWN)
            if len(self._info) < self._info_limit:
                self._info[name] = hit  # asked again and again (per published verdict)
        return hit


@lru_cache(maxsize=1)
def rules() -> Rules:
    return Rules(_load("dpi_protocols.toml"), _load("dpi_apps.toml"))
