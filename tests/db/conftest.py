from tests.fixtures.live import live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py
