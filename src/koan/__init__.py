"""Koan: a self-hosted AI coding tutor."""

__version__ = "0.1.0"
