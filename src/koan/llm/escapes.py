"""Code written in base32 (upper or lower case), percent-encoding (`x%20%3C%3D%20n`), HTML
character references (`&#60;`, `&lt;`) or escape sequences (`\\x3c`, `\\u003c`), read as the text
it stands for.

Pure functions, no I/O, nothing evaluated. `koan.llm.encodings` reads a reply through these
decoders as it reads base64 or hex: a run counts only when what it decodes to reads as code.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import urllib.parse
from collections.abc import Callable

# Base32, padded or not, long enough to hold a statement: upper case, or lower case with a digit
# or padding in it (a long lower-case word alone is a word, not base32).
BASE32 = re.compile(
    r"(?<![\w=+/-])(?:[A-Z2-7]{8,}={0,6}|(?=[a-z]*[2-7=])[a-z2-7]{8,}={0,6})(?![\w=+/-])"
)
# A run without spaces holding `%XX` escapes (a space is `%20` or `+`): `return%20total` too.
PERCENT = re.compile(r"(?<![\w%])(?:[^\s`%]*%[0-9A-Fa-f]{2})+[^\s`%]*")
_ESCAPE = (
    r"\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\u\{[0-9A-Fa-f]{1,6}\}|\\U[0-9A-Fa-f]{8}"
    r"|&#[0-9]{1,7};|&#[xX][0-9A-Fa-f]{1,6};|&[A-Za-z][A-Za-z0-9]{1,7};"
)
ONE_ESCAPE = re.compile(_ESCAPE)
# A run without spaces holding two or more escapes (an escaped line escapes its spaces too).
ESCAPED = re.compile(rf"(?:[^\s`\\&]*(?:{_ESCAPE})){{2,}}[^\s`\\&]*")
# Punctuation that ends the sentence a run sits in rather than the run.
_TRAILING = ".,;!?)"


def _printable(decoded: str) -> str | None:
    if len(decoded) < 2 or not all(c.isprintable() or c in "\n\t" for c in decoded):
        return None
    return decoded


def from_base32(run: str) -> str | None:
    """The text a base32 run stands for, or None when it is not readable text."""
    body = run.rstrip("=")
    if len(body) % 8 in (1, 3, 6):
        return None
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8), casefold=True)
        return _printable(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return None


def from_percent(run: str) -> str | None:
    """The text a percent-encoded run stands for (`+` a space unless `%20` is used)."""
    run = run.rstrip(_TRAILING)
    try:
        if "+" in run and "%20" not in run:
            decoded = urllib.parse.unquote_plus(run, errors="strict")
        else:
            decoded = urllib.parse.unquote(run, errors="strict")
    except UnicodeDecodeError:
        return None
    return _printable(decoded)


def _one(match: re.Match[str]) -> str:
    escape = match.group(0)
    if escape.startswith("&"):
        return html.unescape(escape)
    digits = escape[2:].strip("{}")
    code = int(digits, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return escape
    return chr(code)


def unescape(text: str) -> str:
    """The text with its character references and `\\x`, `\\u` and `\\U` escapes decoded (other
    backslash escapes, `\\n` among them, are left as written)."""
    return ONE_ESCAPE.sub(_one, text)


def from_escaped(run: str) -> str | None:
    """The text a run of escapes stands for."""
    return _printable(unescape(run.rstrip(_TRAILING)))


DECODERS: tuple[tuple[re.Pattern[str], Callable[[str], str | None]], ...] = (
    (BASE32, from_base32),
    (PERCENT, from_percent),
    (ESCAPED, from_escaped),
)
