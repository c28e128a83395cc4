"""NATS authentication and TLS as the README documents them, against a real nats-server:
user/password accepted and refused, and a TLS server verified with a CA bundle (`--tls-ca`)."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from packettracer.config import RelaySettings
from packettracer.services.relay.connection import RelayAuthError, RelayError, connect
from packettracer.services.relay.server import NatsServer, find_nats_server, free_port

pytestmark = pytest.mark.skipif(find_nats_server() is None, reason="nats-server is not installed")


async def test_user_and_password(tmp_path: Path) -> None:
    with NatsServer(
        port=free_port(), store_dir=str(tmp_path / "js"), user="paris", password="s3cret"
    ) as server:
        good = RelaySettings(url=server.url, user="paris", password="s3cret")
        nc = await connect(good, reconnect=False)
        assert nc.is_connected
        await nc.close()
        with pytest.raises(RelayAuthError, match="refused the credentials"):
            await connect(RelaySettings(url=server.url, user="paris", password="nope"))


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PacketTracer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


async def test_tls_with_a_ca_bundle(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = _certificates(tmp_path)
    config = tmp_path / "nats.conf"
    config.write_text(f'tls {{ cert_file: "{cert_file}", key_file: "{key_file}" }}\n')
    port = free_port()
    server = NatsServer(port=port, store_dir=str(tmp_path / "js"), config_file=str(config))
    server.start()
    try:
        url = f"tls://127.0.0.1:{port}"
        nc = await connect(RelaySettings(url=url, tls_ca=str(ca_file)), reconnect=False)
        assert nc.is_connected
        await nc.close()
        # without our CA the server's certificate is not trusted: a clear error, no traceback
        with pytest.raises(RelayError, match="cannot connect"):
            await connect(RelaySettings(url=url), reconnect=False)
    finally:
        server.stop()


def test_the_agent_command_uses_tls_ca(tmp_path: Path) -> None:
    """`packettracer agent --tls-ca` end to end: it publishes its flows over TLS."""
    from conftest import DATA, agent_command

    ca_file, cert_file, key_file = _certificates(tmp_path)
    config = tmp_path / "nats.conf"
    config.write_text(f'tls {{ cert_file: "{cert_file}", key_file: "{key_file}" }}\n')
    port = free_port()
    with NatsServer(port=port, store_dir=str(tmp_path / "js"), config_file=str(config)):
        result = subprocess.run(
            agent_command(
                "tls-site",
                f"tls://127.0.0.1:{port}",
                tmp_path / "spool",
                *("--tls-ca", str(ca_file), "-r", str(DATA / "relay-sample.pcap")),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        from packettracer.services.relay.spool import Spool

        spool = Spool(tmp_path / "spool" / "tls-site.sqlite")
        assert len(spool) == 0  # everything was delivered, nothing left waiting
        spool.close()
