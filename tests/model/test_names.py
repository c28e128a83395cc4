from packettracer.model.hostnames import client_hello_sni, http_host
from packettracer.model.names import MIN_TTL, NameTable, display, registered_domain

from .resolution_helpers import packets


def test_client_asked_names_beat_ptr_and_the_latest_wins() -> None:
    table = NameTable()
    table.add("151.101.1.69", "151.101.1.69.example-cdn.net", "ptr", 10.0)
    table.add("151.101.1.69", "www.example.org", "dns", 11.0, ttl=300)
    assert table.best("151.101.1.69", 12.0).source == "dns"
    table.add("151.101.1.69", "static.example.org", "sni", 20.0)
    best = table.best("151.101.1.69", 21.0)
    assert (best.name, best.source) == ("static.example.org", "sni")


def test_dns_names_expire_after_their_ttl_with_a_floor() -> None:
    table = NameTable()
    table.add("93.184.216.34", "a.example", "dns", 100.0, ttl=5)
    assert table.best("93.184.216.34", 100.0 + MIN_TTL - 1).name == "a.example"
    assert table.best("93.184.216.34", 100.0 + MIN_TTL + 1) is None
    table.add("93.184.216.34", "b.example", "dns", 100.0, ttl=3600)
    assert table.best("93.184.216.34", 1000.0).name == "b.example"
    assert table.prune(100000.0) == 2 and len(table) == 0


def test_table_is_bounded_and_names_are_cleaned() -> None:
    table = NameTable(max_addresses=3)
    for i in range(5):
        table.add(f"192.0.2.{i}", f"H{i}.Example.", "dns", 1.0, ttl=60)
    assert len(table) == 3
    assert table.best("192.0.2.4").name == "h4.example"
    assert table.add("192.0.2.9", "bad\x1bname", "dns", 1.0) is None


def test_registered_domain_is_public_suffix_aware() -> None:
    assert registered_domain("www.bbc.co.uk") == "bbc.co.uk"
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("co.uk") is None
    assert registered_domain("10.0.0.1") is None


def test_display_marks_the_source() -> None:
    table = NameTable()
    entry = table.add("192.0.2.1", "host.example", "ptr", 1.0)
    assert display(entry, ascii_only=True) == "host.example r"
    assert display(None) == ""


def test_sni_from_a_real_client_hello() -> None:
    names = {client_hello_sni(p.payload) for p in packets("443-curl.pcap") if p.payload}
    assert "www.ntop.org" in names


def test_sslv2_hello_has_no_sni() -> None:
    # google_ssl.pcap opens with an SSLv2-compatible ClientHello: no extensions, no SNI.
    assert not any(client_hello_sni(p.payload) for p in packets("google_ssl.pcap") if p.payload)


def test_http_host_from_a_real_request() -> None:
    hosts = {http_host(p.payload) for p in packets("http.pcap") if p.payload} - {None}
    assert hosts == {"www.ethereal.com", "pagead2.googlesyndication.com"}
    assert http_host(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n") == "2001:db8::1"
    assert http_host(b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n") == "example.com"
    assert http_host(b"\x16\x03\x01") is None
