"""The relay's wire format: JSON objects with a schema version, validated on receipt.

Subjects (all under `packettracer.<site>.`):
    heartbeat      every interval: agent version, host, interface, packets/s, drops, CPU, memory
    stats          every interval: packets, bytes, flows, pps, bps
    flows.update   every interval: active flows that changed (a list)
    flows.ended    each ended flow, durable (JetStream), with a per-site sequence number
    alerts         each alert, durable (JetStream)
    names          names seen on the wire (DNS answers, SNI, Host)
Raw packets are never shipped.
"""

from __future__ import annotations

import json
import re
from typing import Any

SCHEMA_VERSION = 1
SUBJECT_ROOT = "packettracer"
MAX_MESSAGE_BYTES = 256 * 1024
STREAM_NAME = "PACKETTRACER"
# Subjects kept in the JetStream stream: nothing is lost while the collector is away.
DURABLE_KINDS = ("flows.ended", "alerts")
KINDS = ("heartbeat", "stats", "flows.update", "flows.ended", "alerts", "names")
SITE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidMessage(ValueError):
    """A message that is not valid JSON, too big, of an unknown version, or missing fields."""


def subject(site: str, kind: str) -> str:
    return f"{SUBJECT_ROOT}.{site}.{kind}"


def durable_subjects() -> list[str]:
    return [f"{SUBJECT_ROOT}.*.{kind}" for kind in DURABLE_KINDS]


def parse_subject(subj: str) -> tuple[str, str]:
    """'packettracer.siteA.flows.ended' -> ('siteA', 'flows.ended')."""
    parts = subj.split(".", 2)
    if len(parts) != 3 or parts[0] != SUBJECT_ROOT or parts[2] not in KINDS:
        raise InvalidMessage(f"unexpected subject {subj!r}")
    if not SITE_RE.match(parts[1]):
        raise InvalidMessage(f"bad site name in subject {subj!r}")
    return parts[1], parts[2]


def encode(kind: str, site: str, body: dict[str, Any]) -> bytes:
    msg = {"v": SCHEMA_VERSION, "kind": kind, "site": site, **body}
    return json.dumps(msg, separators=(",", ":"), default=str).encode()


# Required fields and their types per kind (beyond v, kind, site).
_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "heartbeat": {"ts": (int, float), "version": str, "interval": (int, float)},
    "stats": {"ts": (int, float), "packets": int, "bytes": int},
    "flows.update": {"ts": (int, float), "flows": list},
    "flows.ended": {"ts": (int, float), "seq": int, "flow": dict},
    "alerts": {"ts": (int, float), "seq": int, "alert": dict},
    "names": {"ts": (int, float), "names": list},
}
_FLOW_FIELDS: dict[str, type | tuple[type, ...]] = {
    "proto": str,
    "src": str,
    "dst": str,
    "sport": int,
    "dport": int,
    "packets_fwd": int,
    "packets_rev": int,
    "bytes_fwd": int,
    "bytes_rev": int,
    "first_seen": (int, float),
    "last_seen": (int, float),
}


def decode(data: bytes, subj: str) -> dict[str, Any]:
    """Parse and validate one message received on `subj`; raises InvalidMessage."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    site, kind = parse_subject(subj)
    try:
        msg = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise InvalidMessage("not a JSON object")
    if msg.get("v") != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported schema version {msg.get('v')!r}")
    if msg.get("kind") != kind or msg.get("site") != site:
        raise InvalidMessage("kind or site does not match the subject")
    _check(msg, _REQUIRED[kind], kind)
    if kind == "flows.ended":
        _check(msg["flow"], _FLOW_FIELDS, "flow")
    elif kind == "flows.update":
        for flow in msg["flows"]:
            if not isinstance(flow, dict):
                raise InvalidMessage("flow update is not an object")
            _check(flow, _FLOW_FIELDS, "flow")
            if not isinstance(flow.get("id"), int):
                raise InvalidMessage("flow update without an integer id")
    return msg


def _check(obj: dict[str, Any], fields: dict[str, type | tuple[type, ...]], what: str) -> None:
    for name, types in fields.items():
        value = obj.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise InvalidMessage(f"{what}: field {name!r} missing or of the wrong type")
