"""queuecast hub: the queue's source of truth, its HTTP API and live feeds."""

__version__ = "0.1.0"
