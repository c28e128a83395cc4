"""PacketTracer: real-time packet analysis with a terminal dashboard."""

__version__ = "0.1.0"
