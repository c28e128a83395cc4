"""Connecting to NATS with the deployment's credentials, and turning its failures into one line."""

from __future__ import annotations

import ssl
from typing import Any

import nats
from nats.aio.client import Client

from packettracer.config import RelaySettings
from packettracer.errors import PacketTracerError


class RelayError(PacketTracerError):
    pass


class RelayAuthError(RelayError):
    """The server refused our credentials: retrying will not help."""


def connect_options(rs: RelaySettings) -> dict[str, Any]:
    opts: dict[str, Any] = {"name": f"packettracer-{rs.site or 'collector'}"}
    if rs.token:
        opts["token"] = rs.token
    if rs.user:
        opts["user"] = rs.user
        opts["password"] = rs.password or ""
    if rs.creds:
        opts["user_credentials"] = rs.creds
    if rs.nkey_seed:
        opts["nkeys_seed"] = rs.nkey_seed
    if rs.tls_ca or rs.url.startswith("tls://"):
        ctx = ssl.create_default_context(cafile=rs.tls_ca or None)
        opts["tls"] = ctx
    return opts


def _is_auth_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "authorization" in text or "authentication" in text or "permissions" in text


async def _open(
    rs: RelaySettings, reconnect: bool, connect_timeout: float, callbacks: dict[str, Any]
) -> Client:
    errors: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)
        user_cb = callbacks.get("error_cb")
        if user_cb is not None:
            await user_cb(exc)

    kwargs = {k: v for k, v in callbacks.items() if k != "error_cb"}
    try:
        return await nats.connect(
            rs.url,
            connect_timeout=int(max(1, connect_timeout)),
            allow_reconnect=reconnect,
            max_reconnect_attempts=-1 if reconnect else 0,
            reconnect_time_wait=1,
            error_cb=on_error,
            **connect_options(rs),
            **kwargs,
        )
    except Exception as exc:
        cause = next((e for e in errors if _is_auth_error(e)), exc)
        if _is_auth_error(cause) or _is_auth_error(exc):
            raise RelayAuthError(
                f"NATS server {rs.url} refused the credentials ({cause})",
                "check --creds/--token/--user",
            ) from None
        detail = str(exc) or type(exc).__name__
        raise RelayError(f"cannot connect to NATS server {rs.url}: {detail}") from None


async def connect(
    rs: RelaySettings, *, reconnect: bool = True, connect_timeout: float = 2.0, **callbacks: Any
) -> Client:
    """Connect once. Raises RelayAuthError for refused credentials, RelayError for anything
    else (server down, TLS failure), each with a readable message. With `reconnect`, the
    connection returned reconnects by itself forever after a first success; the first attempt
    is made without retries, since nats-py would otherwise retry refused credentials forever."""
    if reconnect:
        probe = await _open(rs, False, connect_timeout, {})
        await probe.close()
    return await _open(rs, reconnect, connect_timeout, callbacks)
