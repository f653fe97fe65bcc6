"""Pure pieces of the web UI: the heat-map, safe Markdown, redirect targets, form errors."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import BaseModel, Field, ValidationError

from koan.web.heatmap import Day, heatmap_svg, shade
from koan.web.markdown import render_markdown
from koan.web.pagekit import field_errors, local_url


def test_heatmap_has_one_cell_per_day_up_to_today() -> None:
    today = date(2026, 11, 25)  # a Wednesday
    svg = str(heatmap_svg([], today=today, weeks=2))
    # Last week up to Wednesday (3 days) plus the whole week before (7).
    assert svg.count("<rect") == 10
    assert f'data-date="{today.isoformat()}"' in svg
    assert f'data-date="{(today + timedelta(days=1)).isoformat()}"' not in svg
    assert 'role="img"' in svg
    assert "0 exercises completed on 0 days" in svg


def test_heatmap_counts_and_labels_active_days() -> None:
    today = date(2026, 11, 25)
    days = [Day(today, 2, 3), Day(today - timedelta(days=1), 0, 4)]
    svg = str(heatmap_svg(days, today=today))
    assert 'data-date="2026-11-25" data-count="2"' in svg
    assert "2026-11-25: 2 completed, 3 attempts" in svg
    assert "2 exercises completed on 1 day in the last 13 weeks" in svg


def test_a_year_long_heatmap_has_52_weeks_and_ids_of_its_own() -> None:
    today = date(2026, 11, 25)  # a Wednesday
    year = str(heatmap_svg([Day(date(2025, 12, 1), 1, 1)], today=today, weeks=52, name="y"))
    assert year.count("<rect") == 51 * 7 + 3
    assert 'data-date="2025-12-01" data-count="1"' in year  # the first Monday shown
    assert 'class="heatmap y"' in year
    assert 'aria-labelledby="y-title"' in year
    assert '<title id="y-title">1 exercise completed on 1 day in the last 52 weeks' in year


@pytest.mark.parametrize(
    ("completed", "attempts", "expected"), [(0, 0, 0), (0, 2, 1), (1, 1, 2), (3, 3, 4), (9, 9, 4)]
)
def test_heatmap_shades(completed: int, attempts: int, expected: int) -> None:
    assert shade(completed, attempts) == expected


def test_markdown_escapes_raw_html_and_bad_links() -> None:
    html = str(
        render_markdown(
            "Hi <img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) [ok](https://example.com)"
        )
    )
    assert "<img" not in html
    assert "&lt;img" in html
    assert 'href="javascript:' not in html
    assert 'href="https://example.com"' in html


def test_markdown_code_fences_get_prism_language_classes() -> None:
    html = str(render_markdown("```py\nx < 1\n```\n\n```js\nlet a\n```"))
    assert '<code class="language-python">x &lt; 1' in html
    assert '<code class="language-javascript">' in html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/progress", "/progress"),
        ("/exercises?language=python", "/exercises?language=python"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("/ok\r\nSet-Cookie: x", "/dashboard"),
        (None, "/dashboard"),
    ],
)
def test_local_url_refuses_other_sites(value: str | None, expected: str) -> None:
    assert local_url(value) == expected


def test_form_errors_are_in_the_apps_words_whatever_the_field() -> None:
    class Form(BaseModel):
        amount: Decimal
        share: float
        due: datetime
        day: date
        ident: uuid.UUID
        agreed: bool
        code: str = Field(pattern="^[A-Z0-9]+$")
        cents: Decimal = Field(decimal_places=2)
        tags: list[str]
        count: int = Field(ge=1)

    with pytest.raises(ValidationError) as caught:
        Form.model_validate(
            {"amount": "1,50", "share": "half", "due": "soon", "day": "someday", "ident": "x",
             "agreed": "maybe", "code": "abc", "cents": "1.234", "tags": "x", "count": "0"}
        )  # fmt: skip
    errors = field_errors(caught.value)
    assert set(errors) == set(Form.model_fields)
    for name, message in errors.items():
        assert "Input should" not in message, (name, message)
        assert "should match pattern" not in message, (name, message)
        assert "Decimal input" not in message, (name, message)
        assert message[0].isupper(), (name, message)
        assert message.endswith("."), (name, message)
    assert errors["amount"] == "Enter a number, like 12.50."
    assert errors["due"] == "Enter a date and time."
    assert errors["count"] == "Enter a number of at least 1."
