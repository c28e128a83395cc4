"""`packettracer report -r FILE`: headless analysis of a capture; no terminal needed."""

from __future__ import annotations

import argparse
import sys

from packettracer.config import Settings
from packettracer.errors import UsageError
from packettracer.services.report import analyze_file, write_report

HELP = "Analyze a capture file headlessly and print its flows and a summary."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--read", metavar="FILE", help="pcap or pcapng file (required)")
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF filter")
    parser.add_argument(
        "--format", choices=["json", "csv", "table"], default="table", help="output format"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.read:
        raise UsageError("report: -r FILE is required")
    result = analyze_file(args.read, settings, bpf_filter=settings.capture.bpf_filter)
    write_report(result, args.format, sys.stdout)
    sys.stdout.flush()
    for warning in result.warnings:
        sys.stderr.write(f"packettracer: warning: {warning}\n")
    return 0
