"""Print the flow fields of the IPv4 probes seen on an interface, one JSON list on stdout.

usage: sniff.py IFACE SRC DST SECONDS
Runs until SIGTERM (or SECONDS at most), then prints. Run inside a namespace (ip netns exec);
lets the traceroute tests check that every probe of a trace carried the same flow identifier
(Paris traceroute)."""

from __future__ import annotations

import json
import signal
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def main() -> None:
    iface, src, dst, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    sock.bind((iface, ETH_P_IP))
    sock.settimeout(0.1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("ready", file=sys.stderr, flush=True)
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stop:
            sock.setblocking(False)  # read what is still queued, then finish
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        except BlockingIOError:
            break
        if len(data) < 28 or socket.inet_ntoa(data[12:16]) != src:
            continue
        if socket.inet_ntoa(data[16:20]) != dst:
            continue
        ihl = (data[0] & 0x0F) * 4
        proto, ttl, l4 = data[9], data[8], data[ihl:]
        if proto == 1 and l4[0] == 8:
            _, _, cksum, ident, seq = struct.unpack_from("!BBHHH", l4)
            seen.append({"proto": "icmp", "ttl": ttl, "flow": [ident, cksum], "probe": seq})
        elif proto in (6, 17):
            sport, dport = struct.unpack_from("!HH", l4)
            probe = struct.unpack_from("!H" if proto == 17 else "!I", l4, 6 if proto == 17 else 4)
            name = "udp" if proto == 17 else "tcp"
            seen.append({"proto": name, "ttl": ttl, "flow": [sport, dport], "probe": probe[0]})
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
