"""Blocklists on disk: load every list file of a folder into a ReputationDB, reload a file when
its mtime or size changes (polled), and download the configured list URLs (`blocklists update`).

Every regular file in the folder whose name does not start with '.' is a list; its name without
the extension is the list's name (`spamhaus_drop.txt` -> `spamhaus_drop`). No folder, no lists:
the tool works without any.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from urllib.parse import urlparse

from packettracer.errors import PacketTracerError
from packettracer.model.reputation import Blocklist, ReputationDB, parse_lines

log = logging.getLogger(__name__)

POLL_INTERVAL = 5.0
LIST_SUFFIXES = (".txt", ".netset", ".ipset", ".list", ".lst", ".csv", ".drop", "")


class BlocklistError(PacketTracerError):
    """A list could not be fetched or written."""


def list_name(path: Path) -> str:
    name = path.name
    for suffix in (".txt", ".netset", ".ipset", ".list", ".lst"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_file(path: Path) -> Blocklist:
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        return parse_lines(list_name(path), fh, source=str(path))


class BlocklistService:
    """Runtime service `blocklists`: keeps `db` in step with the folder."""

    name = "blocklists"

    def __init__(self, directory: str, db: ReputationDB | None = None) -> None:
        self.directory = Path(directory).expanduser()
        self.db = db if db is not None else ReputationDB()
        self._seen: dict[Path, tuple[float, int]] = {}
        self.load_seconds = 0.0
        self.errors: list[str] = []
        self.reloads = 0

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        try:
            entries = sorted(self.directory.iterdir())
        except OSError as exc:
            self.errors.append(f"{self.directory}: {exc.strerror}")
            return []
        return [p for p in entries if p.is_file() and not p.name.startswith(".")]

    def scan(self) -> list[str]:
        """Load new or changed files, drop removed ones; returns the names (re)loaded."""
        started = time.perf_counter()
        changed: list[str] = []
        present: set[Path] = set()
        for path in self._files():
            present.add(path)
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime, st.st_size)
            if self._seen.get(path) == stamp:
                continue
            try:
                blocklist = load_file(path)
            except OSError as exc:
                self.errors.append(f"{path.name}: {exc.strerror}")
                continue
            self._seen[path] = stamp
            self.db.set_list(blocklist)
            changed.append(blocklist.name)
        for path in list(self._seen):
            if path not in present:
                del self._seen[path]
                self.db.remove(list_name(path))
                changed.append(list_name(path))
        if changed:
            self.reloads += 1
            self.load_seconds = time.perf_counter() - started
            log.info("blocklists: loaded %s in %.2fs", ", ".join(changed), self.load_seconds)
        return changed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            await asyncio.to_thread(self.scan)

    def summary(self) -> list[dict[str, object]]:
        return [
            {
                "name": b.name,
                "entries": b.entries,
                "ranges": b.ranges,
                "skipped": b.skipped,
                "file": os.path.basename(b.source),
            }
            for b in self.db.lists.values()
        ]


def file_name_for(url: str) -> str:
    """The file a URL is saved as: its last path segment (`drop.txt`), or the host name."""
    parsed = urlparse(url)
    base = os.path.basename(parsed.path.rstrip("/")) or parsed.hostname or "list"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)
    return safe.lstrip(".") or "list"


def _prepare(directory: str) -> Path:
    folder = Path(directory).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BlocklistError(f"cannot create {folder}: {exc.strerror}") from None
    return folder


def _save(folder: Path, name: str, text: str) -> None:
    """Write atomically (temp file, then rename) so a reload never sees half a list."""
    tmp = folder / f".{name}.part"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / name)


async def update_lists(
    urls: list[str], directory: str, request_timeout: float = 20.0
) -> list[tuple[str, str, int, str]]:
    """Download each URL into the folder.

    Returns (url, file, entries, error) per list. Raises BlocklistError with one line when
    offline (no URL reachable); a failing URL among working ones is reported in its tuple (-1
    and why)."""
    import httpx

    folder = await asyncio.to_thread(_prepare, directory)
    results: list[tuple[str, str, int, str]] = []
    failures: list[str] = []
    async with httpx.AsyncClient(timeout=request_timeout, follow_redirects=True) as client:
        for url in urls:
            name = file_name_for(url)
            try:
                resp = await client.get(url)
                resp.raise_for_status()
            except httpx.HTTPStatusError as exc:
                failures.append(f"{url}: HTTP {exc.response.status_code}")
                results.append((url, name, -1, failures[-1]))
                continue
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {type(exc).__name__} {exc}".strip())
                results.append((url, name, -1, failures[-1]))
                continue
            text = resp.text
            blocklist = parse_lines(name, text.splitlines())
            await asyncio.to_thread(_save, folder, name, text)
            results.append((url, name, blocklist.entries, ""))
    if urls and len(failures) == len(urls):
        raise BlocklistError(
            f"could not fetch any list ({failures[0]})",
            "offline? the lists already in the folder stay in use",
        )
    return results
