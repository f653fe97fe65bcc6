"""The name a download is saved under (`Content-Disposition`), in any script."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# What a header or a file system would misread in a name: quotes, slashes, the characters
# Windows refuses, and `%` (some browsers decode `%xx` in a plain `filename`).
_UNSAFE = frozenset("\"'\\/<>:|?*%;")
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_HYPHENS = re.compile(r"-{2,}")


def _safe_char(ch: str) -> bool:
    # Control and format characters (bidi overrides), and any space but a plain one (line and
    # paragraph separators among them), are never part of a name.
    return ch not in _UNSAFE and (ch == " " or unicodedata.category(ch)[0] not in "CZ")


def _tidy(part: str) -> str:
    return _HYPHENS.sub("-", part).strip("-. ")


def _split(name: str) -> tuple[str, str]:
    """The stem and the extension (without its dot; "" for none)."""
    stem, dot, extension = name.rpartition(".")
    return (stem, extension) if dot else (name, "")


def _join(stem: str, extension: str) -> str:
    return f"{stem}.{extension}" if extension else stem


def safe_file_name(name: str, *, default: str = "download") -> str:
    """`name` with what a header or a file system would misread turned into hyphens, and
    without leading or trailing dots and spaces; `default` for a name with nothing left."""
    text = "".join(ch if _safe_char(ch) else "-" for ch in unicodedata.normalize("NFC", name))
    stem, extension = _split(text)
    return _join(_tidy(stem) or default, _tidy(extension))


def ascii_file_name(name: str, *, default: str = "download") -> str:
    """`name` in ASCII letters, digits, `.`, `_`, `-` and spaces: accents dropped ("á" -> "a"),
    other characters turned into hyphens."""

    def plain(part: str) -> str:
        decomposed = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode()
        return _tidy(_ASCII_UNSAFE.sub("-", decomposed))

    stem, extension = _split(safe_file_name(name, default=default))
    return _join(plain(stem) or default, plain(extension))


def attachment(filename: str) -> str:
    """A `Content-Disposition` for a download saved as `filename`: the ASCII `filename` every
    client reads and, when the name is not plain ASCII, the name itself as RFC 6266's
    `filename*` (UTF-8, percent-encoded), which browsers prefer."""
    name = safe_file_name(filename)
    fallback = ascii_file_name(name)
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header
