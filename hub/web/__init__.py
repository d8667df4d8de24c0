"""The HTTP surface: thin handlers over hub.service."""
