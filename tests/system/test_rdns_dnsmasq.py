"""Reverse DNS through the rdns service against a real dnsmasq started on a loopback port:
answers, the cache, failures cached briefly, bounded concurrency, timeouts."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from packettracer.config import Settings
from packettracer.services.rdns import ReverseDns

RECORDS = {
    "192.0.2.10": "web.lab.example",
    "198.51.100.7": "mail.lab.example",
    "2001:db8::53": "ns.lab.example",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_dnsmasq(*records: str) -> Iterator[int]:
    """A dnsmasq answering only its own `records` (dnsmasq options) on a free loopback port, once
    it answers; yields the port. Skips the test when dnsmasq is missing or does not start."""
    exe = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if exe is None:
        pytest.skip("dnsmasq is not installed (apt package dnsmasq-base)")
    port = free_port()
    args = [
        exe,
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--pid-file=",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        *records,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.skip(f"dnsmasq did not start: {out.strip()[:200]}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                # a minimal query for "." to see whether it answers yet
                s.settimeout(0.2)
                s.sendto(
                    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
                    ("127.0.0.1", port),
                )
                try:
                    s.recvfrom(512)
                    break
                except OSError:
                    continue
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def dnsmasq() -> Iterator[int]:
    with running_dnsmasq(
        "--ptr-record=10.2.0.192.in-addr.arpa,web.lab.example",
        "--host-record=mail.lab.example,198.51.100.7",
        "--host-record=ns.lab.example,2001:db8::53",
        "--local-ttl=600",
    ) as port:
        yield port


def service(port: int, **kwargs: object) -> ReverseDns:
    return ReverseDns(Settings(), nameservers=[f"127.0.0.1:{port}"], **kwargs)  # type: ignore[arg-type]


async def test_ptr_answers_from_dnsmasq(dnsmasq: int) -> None:
    rdns = service(dnsmasq, timeout=1.0)
    for address, name in RECORDS.items():
        result = await rdns.resolve(address)
        assert (result.name, result.error) == (name, None), address
    # cached: lookup() answers at once without a query
    before = rdns.queries
    assert rdns.lookup("192.0.2.10") == "web.lab.example"
    assert rdns.queries == before
    await rdns.close()


async def test_unknown_addresses_fail_and_are_cached_briefly(dnsmasq: int) -> None:
    now = [100.0]
    rdns = service(dnsmasq, timeout=1.0, failure_ttl=60.0, clock=lambda: now[0])
    result = await rdns.resolve("203.0.113.200")
    assert result.name is None and result.error
    assert rdns.lookup("203.0.113.200") is None and not rdns._queue  # cached failure
    now[0] += 61
    assert rdns.lookup("203.0.113.200") is None
    assert list(rdns._queue) == ["203.0.113.200"]  # asked again after the failure TTL
    await rdns.close()


async def test_background_lookups_are_bounded_and_never_block(dnsmasq: int) -> None:
    rdns = service(dnsmasq, timeout=1.0, concurrency=3)
    addresses = [f"192.0.2.{i}" for i in range(1, 41)]
    start = time.monotonic()
    for address in addresses:
        assert rdns.lookup(address) is None or address == "192.0.2.10"
    assert time.monotonic() - start < 0.05  # queueing only
    task = asyncio.get_running_loop().create_task(rdns.run())
    await rdns.drain(10.0)
    task.cancel()
    await rdns.close()
    assert rdns.max_in_flight <= 3
    assert rdns.lookup("192.0.2.10") == "web.lab.example"
    assert all(rdns.cached(a) is not None for a in addresses)


async def test_timeout_against_a_silent_server() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        rdns = ReverseDns(
            Settings(), nameservers=[f"127.0.0.1:{silent.getsockname()[1]}"], timeout=0.3
        )
        start = time.monotonic()
        result = await rdns.resolve("192.0.2.77")
        assert time.monotonic() - start < 3.0
        assert result.name is None and result.error
        await rdns.close()
    finally:
        silent.close()


def test_no_resolve_and_offline_turn_lookups_off() -> None:
    settings = Settings()
    settings.resolve.enabled = False
    off = ReverseDns(settings)
    assert off.lookup("192.0.2.10") is None and not off._queue
    settings = Settings()
    settings.resolve.offline = True
    assert not ReverseDns(settings).enabled


async def test_dashboard_shows_ptr_names_from_dnsmasq(tmp_path: object) -> None:
    """The whole path: a replayed capture in the dashboard, reverse DNS configured to a real
    dnsmasq, the Traffic panel's Name column showing the PTR name with its marker; with -n the
    same flow shows no name and nothing is asked."""
    from functional.dashboard_helpers import DATA, dashboard_settings, make_app, wait_for

    # http.pcap's resolver: the only flow without a passive name
    with running_dnsmasq("--ptr-record=203.2.253.145.in-addr.arpa,resolver.ptr.test") as port:
        settings = dashboard_settings(DATA / "http.pcap")
        settings.resolve.enabled = True
        settings.resolve.offline = False
        settings.resolve.nameservers = [f"127.0.0.1:{port}"]
        settings.ownership.enabled = False  # RDAP would go to the internet
        app = make_app(settings=settings)
        async with app.run_test(size=(200, 30)) as pilot:
            await app.settle()
            traffic = app.panels["1"]
            feature = app.runtime.features["resolution"]

            def cells() -> set[str]:
                traffic.invalidate()
                table = traffic.table
                return {c.plain for i in range(table.row_count) for c in table.get_row_at(i)}

            # the PTR answer lands in the cache; the Name column shows it within a second
            await wait_for(pilot, lambda: "resolver.ptr.test ʳ" in cells(), 10.0)
            assert "www.ethereal.com ʰ" in cells()
            assert feature.rdns.queries >= 1
        quiet = dashboard_settings(DATA / "http.pcap")
        quiet.resolve.nameservers = [f"127.0.0.1:{port}"]
        app = make_app(settings=quiet)  # -n and --offline, as the helpers build it
        async with app.run_test(size=(200, 30)) as pilot:
            await app.settle()
            feature = app.runtime.features["resolution"]
            assert not feature.rdns.enabled
            flow = next(f for f in app.panels["1"].shown if f.dst == "145.253.2.203")
            assert feature.describe(flow).name is None
            assert feature.rdns.queries == 0


async def test_addresses_no_resolver_knows_are_never_asked() -> None:
    """Loopback, multicast, broadcast and unspecified addresses are not queued for PTR."""
    from packettracer.config import Settings
    from packettracer.services.rdns import ReverseDns

    rdns = ReverseDns(Settings())
    for address in ("127.0.0.1", "::1", "224.0.0.251", "ff02::fb", "255.255.255.255", "0.0.0.0"):
        assert rdns.lookup(address) is None
    assert not rdns._queue
    rdns.lookup("10.1.2.3")  # a LAN address is asked: a local resolver often knows it
    assert list(rdns._queue) == ["10.1.2.3"]
