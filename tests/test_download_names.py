"""The name a download is saved under: any script, an ASCII fallback, nothing a header or a
file system would misread."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from koan.common.download import attachment

EXTENDED = re.compile(r"filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$")


def parts(header: str) -> tuple[str, str | None]:
    """The ASCII `filename` and the decoded `filename*` of a Content-Disposition."""
    plain = re.match(r'attachment; filename="([^"\\]*)"(?:; |$)', header)
    assert plain, header
    extended = EXTENDED.search(header)
    return plain.group(1), unquote(extended.group(1), errors="strict") if extended else None


def test_an_ascii_name_is_sent_as_it_is() -> None:
    assert attachment("koan-export-2027-01-04.json") == (
        'attachment; filename="koan-export-2027-01-04.json"'
    )


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("informática-1º-roster.csv", "informatica-1o-roster.csv"),
        ("数学-gradebook.csv", "gradebook.csv"),
        ("日本語.csv", "download.csv"),
    ],
)
def test_a_name_in_any_script_keeps_it_with_an_ascii_fallback(name: str, fallback: str) -> None:
    header = attachment(name)
    assert header.isascii()
    assert parts(header) == (fallback, name)


@pytest.mark.parametrize(
    "name",
    [
        'a"b.csv',
        "a\r\nSet-Cookie: x=1.csv",
        "../../etc/passwd.csv",
        "a\\b/c.csv",
        "a\x00b\x1b[31m\u202eb.csv",
        'Infor"mática\n1º.csv',
        "%22quoted%22.csv",
    ],
)
def test_a_name_cannot_break_the_header_or_leave_the_folder(name: str) -> None:
    header = attachment(name)
    assert header.isascii()
    assert "\r" not in header
    assert "\n" not in header
    plain, extended = parts(header)
    for shown in (plain, extended or plain):
        assert not re.search(r'["\\/%\x00-\x1f\x7f\u202a-\u202e]', shown), shown
        assert shown.endswith(".csv")
        assert not shown.startswith(".")
