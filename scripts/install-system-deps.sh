#!/usr/bin/env bash
# Installs the Debian packages PacketTracer needs. Usage: install-system-deps.sh [run|test]
#   run:  what the dashboard needs at run time (libpcap for BPF compilation, iproute2) and
#         the C compiler and headers the compiled DPI modules are built with
#   test: also the real peers the test suite drives (tcpdump, tshark, dnsmasq, nmap, chromium, ...)
# Idempotent and quiet when everything is already there; needs root (or sudo) on Debian/Ubuntu.
set -euo pipefail
mode=${1:-run}
pkgs=(libpcap0.8 iproute2 python3-venv)
pkgs+=(gcc python3-dev)  # setup.py compiles the DPI's modules with mypyc (pure Python without)
if [ "$mode" = test ]; then
  pkgs+=(tcpdump tshark wireshark-common dnsmasq-base nmap tcpreplay chromium iputils-ping procps psmisc e2fsprogs util-linux)
  pkgs+=(nftables ethtool)  # traceroute tests: silent routers (nft), delay-line offloads (ethtool)
  pkgs+=(libndpi-bin)  # benchmarks: ndpiReader, the C baseline report throughput is measured against
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: not a Debian-like system; please install: ${missing[*]}" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
