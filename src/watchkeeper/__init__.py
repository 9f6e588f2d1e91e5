"""Watchkeeper: self-hosted production monitoring."""

__version__ = "0.1.0"
