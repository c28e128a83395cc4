"""Helpers for the live-capture tests: namespaces, and a namespace pair joined by a veth."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@dataclass
class NsPair:
    """Namespaces `a` and `b`; a's `veth_a` (ip_a) is wired to b's `veth_b` (ip_b)."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    ip_a: str
    ip_b: str

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


@contextmanager
def ns_pair() -> Iterator[NsPair]:
    tag = uuid.uuid4().hex[:6]
    subnet = random.randint(1, 254)
    pair = NsPair(
        a=f"ptlive-{tag}-a",
        b=f"ptlive-{tag}-b",
        veth_a=f"pla{tag}",
        veth_b=f"plb{tag}",
        ip_a=f"10.199.{subnet}.1",
        ip_b=f"10.199.{subnet}.2",
    )
    try:
        for ns in (pair.a, pair.b):
            run("ip", "netns", "add", ns)
            # No IPv6 chatter (router solicitations, MLD) on the link: counts stay exact.
            for key in ("all", "default"):
                run(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    f"net.ipv6.conf.{key}.disable_ipv6=1",
                )
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run(
            "ip", "link", "add", pair.veth_a, "netns", pair.a, "type", "veth",
            "peer", "name", pair.veth_b, "netns", pair.b,
        )  # fmt: skip
        run("ip", "-n", pair.a, "addr", "add", f"{pair.ip_a}/24", "dev", pair.veth_a)
        run("ip", "-n", pair.b, "addr", "add", f"{pair.ip_b}/24", "dev", pair.veth_b)
        run("ip", "-n", pair.a, "link", "set", pair.veth_a, "up")
        run("ip", "-n", pair.b, "link", "set", pair.veth_b, "up")
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


@contextmanager
def namespace() -> Iterator[str]:
    name = f"ptlive-{uuid.uuid4().hex[:6]}"
    run("ip", "netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
