"""Subcommands of the `packettracer` command, one module each (see cli.COMMANDS)."""
