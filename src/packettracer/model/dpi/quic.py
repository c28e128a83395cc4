"""QUIC Initial packets: remove header protection and decrypt the payload with the initial
secrets (RFC 9001 section 5 for v1 and draft-29, RFC 9369 for v2), then collect the CRYPTO
frames, which carry the TLS ClientHello (SNI, ALPN, JA4 with the `q` prefix)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
QUIC_DRAFT29 = 0xFF00001D

# version -> (initial salt, label prefix, long-header type bits of an Initial packet)
_VERSIONS: dict[int, tuple[bytes, str, int]] = {
    QUIC_V1: (bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), "quic", 0),
    QUIC_V2: (bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), "quicv2", 1),
    QUIC_DRAFT29: (bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899"), "quic", 0),
}
for _draft in range(27, 35):
    _VERSIONS.setdefault(0xFF000000 | _draft, _VERSIONS[QUIC_DRAFT29])

VERSION_NAMES = {QUIC_V1: "QUICv1", QUIC_V2: "QUICv2", QUIC_DRAFT29: "QUIC draft-29"}


class QUICError(ValueError):
    """Not a QUIC Initial we can read."""


@dataclass
class InitialPacket:
    version: int
    dcid: bytes
    crypto: dict[int, bytes]
    """CRYPTO frame data by stream offset."""


def _hkdf_expand_label(secret: bytes, label: str, length: int) -> bytes:
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise QUICError("truncated varint")
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > len(data):
        raise QUICError("truncated varint")
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | data[pos + i]
    return value, pos + size


def is_initial(data: bytes) -> bool:
    """Cheap gate: a long-header packet of a version whose Initial we can read."""
    if len(data) < 7 or not data[0] & 0x80:
        return False
    version = int.from_bytes(data[1:5], "big")
    known = _VERSIONS.get(version)
    return known is not None and (data[0] >> 4) & 3 == known[2]


def client_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, header-protection key) of the client's Initial packets."""
    salt, prefix, _ = _VERSIONS[version]
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()
    secret = _hkdf_expand_label(initial, "client in", 32)
    return (
        _hkdf_expand_label(secret, f"{prefix} key", 16),
        _hkdf_expand_label(secret, f"{prefix} iv", 12),
        _hkdf_expand_label(secret, f"{prefix} hp", 16),
    )


def decrypt_initial(data: bytes, dcid_hint: bytes | None = None) -> InitialPacket:
    """Decrypt the first (client) Initial packet of a datagram. `dcid_hint` is the DCID of
    the connection's first Initial: later client Initials keep deriving keys from it."""
    if not is_initial(data):
        raise QUICError("not a QUIC Initial")
    version = int.from_bytes(data[1:5], "big")
    pos = 5
    dcid_len = data[pos]
    dcid = data[pos + 1 : pos + 1 + dcid_len]
    pos += 1 + dcid_len
    if pos >= len(data):
        raise QUICError("truncated header")
    scid_len = data[pos]
    pos += 1 + scid_len
    token_len, pos = _varint(data, pos)
    pos += token_len
    length, pos = _varint(data, pos)
    pn_offset = pos
    if pn_offset + 4 + 16 > len(data) or pn_offset + length > len(data):
        raise QUICError("truncated packet")
    key, iv, hp = client_keys(version, dcid_hint or dcid)
    sample = data[pn_offset + 4 : pn_offset + 20]
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    first = data[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    if length < pn_len + 16:
        raise QUICError("Initial shorter than its packet number and tag")
    pn_bytes = bytes(data[pn_offset + i] ^ mask[1 + i] for i in range(pn_len))
    header = bytes([first]) + data[1:pn_offset] + pn_bytes
    pn = int.from_bytes(pn_bytes, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    ciphertext = data[pn_offset + pn_len : pn_offset + length]
    try:
        plain = AESGCM(key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise QUICError("Initial does not decrypt (not a client Initial?)") from None
    return InitialPacket(version, dcid, _crypto_frames(plain))


def _crypto_frames(plain: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    n = len(plain)
    while pos < n:
        ftype = plain[pos]
        if ftype == 0x00 or ftype == 0x01:  # PADDING, PING
            pos += 1
        elif ftype == 0x06:  # CRYPTO
            offset, pos = _varint(plain, pos + 1)
            length, pos = _varint(plain, pos)
            out[offset] = plain[pos : pos + length]
            pos += length
        elif ftype in (0x02, 0x03):  # ACK
            _, pos = _varint(plain, pos + 1)
            _, pos = _varint(plain, pos)
            count, pos = _varint(plain, pos)
            _, pos = _varint(plain, pos)
            for _ in range(count):
                _, pos = _varint(plain, pos)
                _, pos = _varint(plain, pos)
            if ftype == 0x03:
                for _ in range(3):
                    _, pos = _varint(plain, pos)
        else:
            # CONNECTION_CLOSE or a frame an Initial should not hold: stop reading.
            break
    return out


def assemble(crypto: dict[int, bytes]) -> bytes:
    """The contiguous CRYPTO stream from offset 0, as far as it goes."""
    out = b""
    while True:
        chunk = crypto.get(len(out))
        if not chunk:
            # A chunk may start inside what we have (retransmission with other boundaries).
            for off, data in crypto.items():
                if off < len(out) < off + len(data):
                    chunk = data[len(out) - off :]
                    break
            if not chunk:
                return out
        out += chunk
