"""Distributed capture over NATS: agents publish compact, versioned messages; a collector folds
them into the dashboard. See messages.py for the wire format."""
