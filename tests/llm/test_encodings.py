"""Code a reply hands over encoded, for the learner to decode in a moment: read as decoded."""

from __future__ import annotations

import base64
import codecs

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
    "characters": f"Join these: {list(FIX)!r}",
    "character codes": f"Join the characters with these codes: {[ord(c) for c in FIX]}",
    "spans to join": "Put `if n % 2 =` and `= 0: total += n` together.",
    "lines to join": "Join these lines into one:\n\nif n %\n2 == 0: tot\nal += n",
    "string pieces": "Evaluate `'if n % 2 == 0: ' + 'total += n'`.",
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
