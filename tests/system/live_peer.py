#!/usr/bin/env python3
"""Real UDP and TCP conversations for the live-capture tests (standard library only, so it runs
under `ip netns exec` as a plain script).

    live_peer.py serve HOST UDP_PORT TCP_PORT COUNT   echo COUNT datagrams and one TCP session
    live_peer.py send  HOST UDP_PORT TCP_PORT COUNT   COUNT request/reply exchanges of each kind

Every datagram waits for its echo before the next is sent, so the UDP packet counts are exact:
COUNT each way.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading

TIMEOUT = 5.0
# struct tcp_info (linux/tcp.h): tcpi_segs_out and tcpi_segs_in follow tcpi_bytes_received.
SEGS_OFFSET = 136
TCP_INFO_SIZE = 144


def udp_echo(host: str, port: int, count: int, ready: threading.Event | None = None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.settimeout(TIMEOUT)
        if ready is not None:
            ready.set()
        for _ in range(count):
            data, peer = sock.recvfrom(65535)
            sock.sendto(data.upper(), peer)


def tcp_echo(host: str, port: int, ready: threading.Event | None = None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(1)
        server.settimeout(TIMEOUT)
        if ready is not None:
            ready.set()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            while True:
                data = conn.recv(65535)
                if not data:
                    break
                conn.sendall(data.upper())


def udp_send(host: str, port: int, count: int, sport: int = 0) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", sport))
        sock.settimeout(TIMEOUT)
        for i in range(count):
            sock.sendto(f"ping {i}".encode(), (host, port))
            sock.recvfrom(65535)


def tcp_send(host: str, port: int, count: int) -> tuple[int, int]:
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count):
            msg = f"hello {i}".encode()
            sock.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = sock.recv(65535)
                if not chunk:
                    raise ConnectionError("server closed early")
                got += chunk
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65535):
            pass
        # The server's FIN has been received and acknowledged: the kernel's segment counters now
        # hold every packet of the connection, each way.
        return segment_counts(sock)


def segment_counts(sock: socket.socket) -> tuple[int, int]:
    """(segments sent, segments received) from TCP_INFO (tcpi_segs_out, tcpi_segs_in)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    segs_out, segs_in = struct.unpack_from("=II", info, SEGS_OFFSET)
    return segs_out, segs_in


def serve(host: str, udp_port: int, tcp_port: int, count: int) -> None:
    ready = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=udp_echo, args=(host, udp_port, count, ready[0])),
        threading.Thread(target=tcp_echo, args=(host, tcp_port, ready[1])),
    ]
    for t in threads:
        t.start()
    for r in ready:
        r.wait(TIMEOUT)
    print("ready", flush=True)
    for t in threads:
        t.join()


def send(host: str, udp_port: int, tcp_port: int, count: int) -> tuple[int, int]:
    """Returns the TCP segments (sent, received) by the client."""
    udp_send(host, udp_port, count)
    segments = tcp_send(host, tcp_port, count)
    print(json.dumps({"tcp_segments": segments}), flush=True)
    return segments


def main(argv: list[str]) -> int:
    mode, host, udp_port, tcp_port, count = argv
    fn = serve if mode == "serve" else send
    fn(host, int(udp_port), int(tcp_port), int(count))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
