"""Code a reply hands over encoded, for the learner to decode in a moment: read as decoded."""

from __future__ import annotations

import base64
import codecs
import urllib.parse

import pytest

from koan.llm.encodings import revealed, vocabulary

FIX = "if n % 2 == 0: total += n"
BLOCK = "for n in numbers:\n    if n % 2 == 0:\n        total += n"
ATTEMPT = "def sum_of_evens(numbers):\n    total = 0\n    for n in numbers:\n        total += n\n"
KNOWN = vocabulary(ATTEMPT)


def flat(text: str) -> str:
    return "".join(text.split())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ENCODED = {
    "base64, decode this": f"Decode this and you have it: {b64(FIX)}",
    "base64, no instruction": f"Here is something to think about: {b64(FIX)}",
    "base64 in a span": f"Try `{b64(FIX)}`.",
    "base64 block": f"```\n{b64(BLOCK)}\n```",
    "hex": f"In hex: {FIX.encode().hex()}",
    "hex escapes": "Print this: " + "".join(f"\\x{b:02x}" for b in FIX.encode()),
    "reversed line": f"Read it backwards: {FIX[::-1]}",
    "reversed span": f"Backwards: `{FIX[::-1]}`",
    "rot13": f"ROT13 it: {codecs.encode(FIX, 'rot13')}",
    "rot13 inside a sentence": f"Try {codecs.encode(FIX, 'rot13')} in your loop, then run it.",
    "characters": f"Join these: {list(FIX)!r}",
    "character codes": f"Join the characters with these codes: {[ord(c) for c in FIX]}",
    "spans to join": "Put `if n % 2 =` and `= 0: total += n` together.",
    "lines to join": "Join these lines into one:\n\nif n %\n2 == 0: tot\nal += n",
    "string pieces": "Evaluate `'if n % 2 == 0: ' + 'total += n'`.",
    "base32": f"Decode this: {base64.b32encode(FIX.encode()).decode()}",
    "base32, unpadded, in a span": f"Try `{base64.b32encode(FIX.encode()).decode().rstrip('=')}`.",
    "base32, lower case": f"Decode this: {base64.b32encode(FIX.encode()).decode().lower()}",
    "percent-encoded": f"URL-decode this: {urllib.parse.quote(FIX)}",
    "percent-encoded, plus for space": f"Unquote `{urllib.parse.quote_plus(FIX)}`.",
    "character references": "Unescape: " + "".join(f"&#{ord(c)};" for c in FIX),
    "hex character references": "Unescape: " + "".join(f"&#x{ord(c):x};" for c in FIX),
    "unicode escapes": "Print this: " + "".join(f"\\u{ord(c):04x}" for c in FIX),
    "escapes of the operators only": "Print this: if n \\u0025 2 \\x3d\\x3d 0: total \\u002b= n",
}


@pytest.mark.parametrize("form", list(ENCODED))
def test_code_given_encoded_reads_as_the_code(form: str) -> None:
    text = flat(revealed(ENCODED[form], KNOWN))

    assert flat(FIX) in text or flat(BLOCK) in text


BENIGN = {
    "prose": "Which numbers reach `total += n`? What should happen to 3?",
    "base64 of words": f"Fun fact: {b64('a tutor never hands out the answer')} is base64.",
    "hex colour": "The colour #1e90ff is dodger blue, and 0xff is 255.",
    "a long word": "Internationalization is a long word, and so is NotImplementedError.",
    "a list of numbers": "Try the input [1, 2, 3, 4] and [10, 20, 30, 40] by hand.",
    "two spans": "Compare `total` with `n` on each pass.",
    "code": "```python\nfor n in numbers:\n    total += n\n```",
    "and, or in prose": "Think about what happens when n is even and when it is odd, or empty.",
    "a URL": "See https://docs.python.org/3/search.html?q=modulo%20operator&area=default for more.",
    "acronyms": "The HTTP API returns JSON, and PEP8 says NOTHING about QUEUEING LONGWORDS.",
    "a percent": "About 50% of the numbers are even; 100%2 is what?",
    "escapes of words": "In Python, '\\u00e9t\\u00e9' is the word été, and '\\n' a new line.",
    "a sentence without code": "On line 4, think about this: what does the loop add each time?",
    "words that are code in rot13": "It should be a loop, not a sum: vs the other one, is it n?",
    "lower-case words": "The abstractions underlying this are straightforward, aren't they?",
    "short words and numbers": "Try `ab`, `30`, `[1, 2]` and 2b or not 2b: MA is a state.",
}


@pytest.mark.parametrize("form", list(BENIGN))
def test_a_reply_with_nothing_encoded_reads_as_it_is(form: str) -> None:
    assert revealed(BENIGN[form], KNOWN) == BENIGN[form]


def test_base64_of_text_that_is_not_code_adds_nothing_to_run() -> None:
    text = revealed(f"Decode: {b64('keep going, you are close')}", KNOWN)

    assert "`" not in text
    assert "```" not in text


JS_ATTEMPT = "function last(items) {\n  let result = items[0];\n  if (items.length > 1) {\n    result;\n  }\n}\n"  # noqa: E501


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (f"Decode: {b64('if (items.length > 0) {')}", "if (items.length > 0) {"),
        (f"On line 3, decode: {b64('d = 2')}", "d = 2"),
        (f"Decode this: {b64('return result')}", "return result"),
        ("On line 4, decode: ;tluser nruter", "return result;"),
    ],
    ids=["a line opening a block", "short", "a statement of words", "backwards"],
)
def test_a_short_line_or_the_head_of_a_block_reads_as_code(reply: str, code: str) -> None:
    assert f"`{code}`" in revealed(reply, vocabulary(JS_ATTEMPT))


def test_the_learners_own_line_encoded_is_a_quote_not_something_to_use() -> None:
    text = revealed(f"Decode this, it is your line 4: {b64('total += n')}. Why?", KNOWN, ATTEMPT)

    assert "`total += n`" in text
    assert "Use `" not in text


@pytest.mark.parametrize(
    "reply",
    [
        f"On line 4, decode: {codecs.encode('return total', 'rot13')}",
        f"On line 4, decode: {codecs.encode('return total', 'rot13')}. Then run it.",
        f"Put this at the end: {'return total'[::-1]}",
        "On line 4, decode: return%20total",
    ],
    ids=["rot13", "rot13, then prose", "backwards", "one percent escape"],
)
def test_a_line_with_no_operator_in_rot13_or_backwards_reads_as_the_code(reply: str) -> None:
    assert "`return total`" in revealed(reply, KNOWN)


def test_rot13_of_words_that_are_not_the_exercises_reads_as_it_is() -> None:
    # "return value" in ROT13: a statement, but of nothing in the exercise's code.
    reply = f"Here is a riddle: {codecs.encode('return value', 'rot13')}"

    assert revealed(reply, KNOWN) == reply


# A fix of one character (an operator, a digit) encoded in a span or in prose, where the reply
# puts it in place of what it names: read as the character.
SHORT = {
    "base64 in a span": ("On line 5, replace `-=` with `Kz0=`.", "`+=`"),
    "base64, padded, in prose": ("On line 4, change the 1 to MA==.", "`0`"),
    "hex in a span": ("Use `3c3d` instead of `<`.", "`<=`"),
    "an escape": ("Replace `-` with `\\x2b`.", "`+`"),
    "percent-encoded": ("Replace `<` with `%3C%3D`.", "`<=`"),
    "character codes": ("Use `[60, 61]` instead of `<`.", "`<=`"),
    "base32, lower case": ("Replace `-` with `fm======`.", "`+`"),
}


@pytest.mark.parametrize("form", list(SHORT))
def test_one_character_given_encoded_reads_as_the_character(form: str) -> None:
    reply, code = SHORT[form]

    assert code in revealed(reply, KNOWN)
