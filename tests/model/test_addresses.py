import pytest

from packettracer.model import addresses
from packettracer.model.addresses import classify, is_local, is_public


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("10.1.2.3", "LAN"),
        ("172.16.0.1", "LAN"),
        ("172.31.255.254", "LAN"),
        ("192.168.1.1", "LAN"),
        ("fd12:3456::1", "LAN"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::fb", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.99", "documentation"),
        ("2001:db8::5", "documentation"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:192.168.0.1", "LAN"),
        ("not-an-address", "reserved"),
    ],
)
def test_reserved_ranges_are_labelled(address: str, label: str) -> None:
    assert classify(address) == label
    assert not is_public(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "81.2.69.160", "2001:4860:4860::8888", "172.32.0.1"]
)
def test_public_addresses_have_no_label(address: str) -> None:
    assert classify(address) is None
    assert is_public(address)


def test_local_means_this_side_of_the_internet() -> None:
    assert is_local("192.168.0.5") and is_local("100.64.1.1") and is_local("fe80::2")
    assert not is_local("8.8.8.8") and not is_local("224.0.0.1")


def test_reverse_pointer() -> None:
    assert addresses.reverse_pointer("1.2.3.4") == "4.3.2.1.in-addr.arpa"
    assert addresses.reverse_pointer("x") is None
