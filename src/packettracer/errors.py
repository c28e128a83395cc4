"""Errors that end in one readable line for the user, never a traceback."""

from __future__ import annotations


class PacketTracerError(Exception):
    """An error the CLI prints as one line and turns into an exit status."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(PacketTracerError):
    """Bad command line or configuration."""

    exit_code = 2


class CaptureFileError(PacketTracerError):
    """A capture file that is missing, unreadable or not a capture."""


class CaptureError(PacketTracerError):
    """Live capture could not start: permission, interface, filter."""


class ConfigError(UsageError):
    """A configuration file that cannot be read or has bad values."""
