"""Widgets read service state; they never do I/O."""
