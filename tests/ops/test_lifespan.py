"""The served app's start and stop."""

from __future__ import annotations

import gc

from koan.app import create_app
from koan.config import Settings


async def test_a_served_app_keeps_what_it_starts_with_out_of_the_collectors_sight(
    settings: Settings,
) -> None:
    gc.unfreeze()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
        assert gc.get_freeze_count() == 0  # given back when it stops
    finally:
        gc.unfreeze()
