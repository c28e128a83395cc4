"""`packettracer blocklists [list|update]`: the reputation lists in the blocklist folder, and
downloading the configured list URLs into it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.services.blocklists import BlocklistError, BlocklistService, update_lists

HELP = "Show the loaded blocklists, or download the configured ones ('update')."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=["list", "update"], default="list", help="default: list"
    )
    parser.add_argument(
        "--dir", metavar="FOLDER", help="blocklist folder (default: [security] blocklist_dir)"
    )
    parser.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="update: fetch this URL (repeatable; default: [security] blocklist_urls)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    folder = args.dir or settings.security.blocklist_dir
    if args.action == "update":
        urls = args.url or settings.security.blocklist_urls
        if not urls:
            raise UsageError(
                "blocklists update: no list URLs configured",
                "set [security] blocklist_urls in the config file, or pass --url URL",
            )
        if settings.resolve.offline:
            raise BlocklistError(
                "blocklists update: offline mode (--offline), nothing fetched",
                "the lists already in the folder stay in use",
            )
        results = asyncio.run(update_lists(urls, folder))
        for url, name, entries, error in results:
            if entries < 0:
                sys.stderr.write(f"packettracer: warning: {error}\n")
            else:
                sys.stdout.write(f"{name}: {entries} entries ({url})\n")
        return 0 if all(r[2] >= 0 for r in results) else 1
    service = BlocklistService(folder)
    service.scan()
    lists = service.summary()
    if not lists:
        sys.stdout.write(f"no blocklists in {service.directory}\n")
        return 0
    width = max(len(str(b["name"])) for b in lists)
    for b in lists:
        sys.stdout.write(
            f"{str(b['name']).ljust(width)}  {b['entries']:>9} entries  {b['ranges']:>9} ranges"
            f"  {b['skipped']:>5} skipped  {b['file']}\n"
        )
    sys.stdout.write(f"loaded in {service.load_seconds:.2f}s\n")
    return 0
