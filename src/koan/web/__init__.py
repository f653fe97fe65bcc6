"""Koan's web UI: server-rendered pages (Jinja2 + HTMX) over the same services as the API."""

from koan.web.router import mount_web, router, static_files

__all__ = ["mount_web", "router", "static_files"]
