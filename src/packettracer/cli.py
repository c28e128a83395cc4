"""Command line: the live dashboard by default, and subcommands for headless work.

    packettracer [-i IFACE] [-f BPF] [-r FILE] ...      the dashboard
    packettracer report -r FILE [--format json|csv|table]
    packettracer <other subcommand> ...                 see `packettracer --help`

Every error ends as one line on stderr and an exit status (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, Protocol, cast

from packettracer import __version__
from packettracer.config import Settings
from packettracer.errors import PacketTracerError, UsageError

PROG = "packettracer"

# Subcommand name -> module with `HELP`, `add_arguments(parser)` and `run(args, settings) -> int`.
# Modules are imported only when their subcommand runs, so `report` never loads Textual.
COMMANDS: dict[str, str] = {
    "report": "packettracer.commands.report",
    "history": "packettracer.commands.history",
    "trace": "packettracer.commands.trace",
    "agent": "packettracer.commands.agent",
    "alerts": "packettracer.commands.alerts",
    "blocklists": "packettracer.commands.blocklists",
}


class CommandModule(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() prints one line and exits 2."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}", "see --help")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--db", metavar="PATH", help="SQLite database (':memory:' keeps nothing)")
    parser.add_argument(
        "-n", "--no-resolve", action="store_true", help="no active name or geo lookups"
    )
    parser.add_argument(
        "--offline", action="store_true", help="never contact services on the internet"
    )
    parser.add_argument(
        "--geoip-db",
        action="append",
        metavar="PATH",
        help="MaxMind/DB-IP/IPinfo .mmdb file for geolocation (repeatable)",
    )
    parser.add_argument(
        "--online-geo", action="store_true", help="ask ip-api.com for city/ISP of public addresses"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeatable)")


def build_main_parser() -> argparse.ArgumentParser:
    subs = ", ".join(COMMANDS)
    parser = _Parser(
        prog=PROG,
        description="Real-time packet analysis dashboard.",
        epilog=f"subcommands: {subs} (run '{PROG} SUBCOMMAND --help')",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-i", "--interface", metavar="IFACE", help="capture interface")
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF capture filter")
    parser.add_argument("-r", "--read", metavar="FILE", help="replay a pcap or pcapng file")
    parser.add_argument(
        "--realtime", action="store_true", help="replay -r FILE with its original pacing"
    )
    parser.add_argument(
        "--list", action="store_true", help="list interfaces (the default one marked) and exit"
    )
    parser.add_argument(
        "--capture-backend",
        choices=["auto", "afpacket", "scapy"],
        help="live capture implementation (default auto: AF_PACKET ring on Linux)",
    )
    parser.add_argument("--snapshot", metavar="OUT.svg", help="headless: write a screenshot")
    parser.add_argument("--panel", metavar="N|NAME", help="panel for --snapshot (default 1)")
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        metavar="S",
        help="--snapshot: seconds of live capture (default 5)",
    )
    parser.add_argument(
        "--size", metavar="WxH", default="120x40", help="--snapshot size (default 120x40)"
    )
    parser.add_argument("--theme", help="Textual theme (textual-dark, textual-light, ...)")
    parser.add_argument(
        "--demo", action="store_true", help="replay a packaged sample capture in a loop (no root)"
    )
    web = parser.add_argument_group("web (the dashboard in a browser)")
    web.add_argument("--serve", action="store_true", help="serve the dashboard over HTTP")
    web.add_argument("--host", default="127.0.0.1", help="--serve address (default 127.0.0.1)")
    web.add_argument("--port", type=int, default=8000, help="--serve port (default 8000)")
    web.add_argument("--serve-token", metavar="TOKEN", help="required when --host is not local")
    parser.add_argument(
        "-t",
        "--trace",
        action="append",
        metavar="TARGET",
        help="trace the route to TARGET from the start (repeatable; panel 2)",
    )
    relay = parser.add_argument_group("relay (distributed capture over NATS)")
    relay.add_argument("--relay", metavar="URL", help="collect from agents via nats://HOST:4222")
    relay.add_argument(
        "--relay-listen",
        nargs="?",
        const="127.0.0.1:4222",
        metavar="ADDR:PORT",
        help="start a local nats-server with JetStream for agents (default 127.0.0.1:4222)",
    )
    relay.add_argument("--relay-only", action="store_true", help="no local capture")
    relay.add_argument("--relay-creds", metavar="FILE", help="NATS credentials file")
    relay.add_argument("--relay-token", metavar="TOKEN", help="NATS token")
    relay.add_argument("--relay-user", metavar="USER", help="NATS user")
    relay.add_argument("--relay-password", metavar="PASSWORD", help="NATS password")
    relay.add_argument("--relay-tls-ca", metavar="FILE", help="CA bundle for NATS over TLS")
    add_common_options(parser)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings.load(args.config)
    cap = settings.capture
    if getattr(args, "interface", None):
        cap.interface = args.interface
    if getattr(args, "filter", None):
        cap.bpf_filter = args.filter
    if getattr(args, "read", None):
        cap.read_file = args.read
    if getattr(args, "realtime", False):
        cap.realtime = True
    if getattr(args, "capture_backend", None):
        cap.backend = args.capture_backend
    if getattr(args, "db", None):
        settings.store.db_path = args.db
    if getattr(args, "no_resolve", False):
        settings.resolve.enabled = False
    if getattr(args, "offline", False):
        settings.resolve.offline = True
    if getattr(args, "geoip_db", None):
        settings.geo.geoip_db = [*settings.geo.geoip_db, *args.geoip_db]
    if getattr(args, "online_geo", False):
        settings.geo.online = True
    if getattr(args, "theme", None):
        settings.ui.theme = args.theme
    if getattr(args, "demo", False):
        from packettracer.demo import demo_capture

        cap.read_file = demo_capture()
        cap.loop = True
        cap.realtime = True
    for target in getattr(args, "trace", None) or []:
        if target not in settings.trace.targets:
            settings.trace.targets.append(target)
    rs = settings.relay
    for flag, attr in (
        ("relay", "url"),
        ("relay_listen", "listen"),
        ("relay_creds", "creds"),
        ("relay_token", "token"),
        ("relay_user", "user"),
        ("relay_password", "password"),
        ("relay_tls_ca", "tls_ca"),
    ):
        value = getattr(args, flag, None)
        if value:
            setattr(rs, attr, value)
    if getattr(args, "relay_only", False):
        rs.only = True
    return settings


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _run_command(name: str, argv: Sequence[str]) -> int:
    module = cast(CommandModule, importlib.import_module(COMMANDS[name]))
    parser = _Parser(prog=f"{PROG} {name}", description=module.HELP)
    module.add_arguments(parser)
    add_common_options(parser)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    settings = settings_from_args(args)
    return module.run(args, settings)


def _run_dashboard(argv: Sequence[str]) -> int:
    parser = build_main_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if args.list:
        from packettracer.capture.interfaces import format_interface_list

        sys.stdout.write(format_interface_list())
        return 0
    settings = settings_from_args(args)
    if args.serve:
        from packettracer.web import serve_dashboard

        return serve_dashboard(args.host, args.port, args.serve_token, argv)
    from packettracer.dashboard import run_dashboard

    return run_dashboard(settings, args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return _run_command(argv[0], argv[1:])
        return _run_dashboard(argv)
    except PacketTracerError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n" if not str(exc).startswith(PROG) else f"{exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `packettracer report ... | head`: the reader left; that is not an error.
        try:
            sys.stdout.close()
        except Exception:
            pass
        return 0
