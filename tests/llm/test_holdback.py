"""The streaming hold-back: prose goes out as it arrives, anything a fix could be made of waits
for the guard (`koan.llm.holdback.scan`), fed the way a model streams, word by word."""

from __future__ import annotations

import re

import pytest

from koan.llm.holdback import scan


def stream(reply: str, size: int = 0) -> tuple[list[tuple[str, str]], list[str]]:
    """Feed the reply word by word (or `size` characters at a time); returns the pieces in
    order, each ("free", text) or ("checked", text), and the text the guard was asked about at
    each check."""
    pieces: list[tuple[str, str]] = []
    checks: list[str] = []
    shown = 0
    text = ""

    def drain(final: bool) -> None:
        nonlocal shown
        while True:
            found = scan(text, shown, final=final)
            if found.free > shown:
                pieces.append(("free", text[shown : found.free]))
                shown = found.free
            if found.unit is None or found.unit <= shown:
                return
            checks.append(text[: found.unit])
            pieces.append(("checked", text[shown : found.unit]))
            shown = found.unit

    chunks = [reply[i : i + size] for i in range(0, len(reply), size)] if size else []
    for word in chunks or re.findall(r"\S+\s*|\s+", reply):
        text += word
        drain(final=False)
    drain(final=True)
    assert "".join(piece for _, piece in pieces) == reply  # everything goes out in the end
    return pieces, checks


def free_text(pieces: list[tuple[str, str]]) -> str:
    return "".join(piece for kind, piece in pieces if kind == "free")


@pytest.mark.parametrize("size", [0, 3])
def test_prose_goes_out_word_by_word_from_the_first_word(size: int) -> None:
    reply = (
        "Look closely at the loop. Which numbers does it add, and which should it add? "
        "What is in the list, or is it empty? If so, what then?"
    )
    pieces, checks = stream(reply, size)

    assert pieces[0] == ("free", "Look ") or size
    assert len(pieces) > 10
    assert checks == []


def test_an_inline_span_waits_with_its_sentence_for_the_check() -> None:
    reply = "Replace `total += n` with `total += n if n % 2 == 0 else 0` and you are done. Good?"
    pieces, checks = stream(reply)

    assert "`" not in free_text(pieces)
    assert free_text(pieces).startswith("Replace ")
    assert checks[0].endswith("and you are done.")  # the whole sentence: both spans
    assert free_text(pieces).endswith("Good?")


@pytest.mark.parametrize(
    ("reply", "held"),
    [
        ("Try this:\n\n```python\nif n % 2 == 0:\n    total += n\n```\nDoes it pass?", "n % 2"),
        ("Your loop:\n\n    for n in numbers:\n        total += n\n\nWhat does it add?", "for n"),
        ("1. def f(numbers):\n2.     return sum(numbers)\n", "def f"),
        ("total = 0 is where it starts.\nWhat comes next?", "total = 0"),
        ("items.sort()\nThen look again.", "items.sort"),
        ('Write "def f():\\n    return 1" and see.', "def f"),
    ],
)
def test_code_is_only_sent_after_a_check(reply: str, held: str) -> None:
    pieces, checks = stream(reply)

    assert held not in free_text(pieces)
    assert any(held in checked for checked in checks)


def test_a_held_sentence_ending_in_a_colon_waits_for_the_block_it_introduces() -> None:
    reply = "Here is the fix (MARKER):\n\n```\ndef f():\n    pass\n```\nDone."
    pieces, checks = stream(reply)

    assert "MARKER" not in free_text(pieces)
    assert checks[0].endswith("```\n")  # the sentence and the block, checked together
    assert free_text(pieces) == "Here is the fix Done."


def test_a_fence_still_open_waits_until_it_closes_or_the_reply_ends() -> None:
    text = "Look:\n\n```python\ndef f():\n"
    found = scan(text, 0)
    assert text[: found.free] == "Look:\n\n"
    assert found.unit is None
    final = scan(text, found.free, final=True)
    assert final.unit == len(text)


def test_what_was_found_free_stays_free_as_the_text_grows() -> None:
    reply = (
        "Good question! Your loop adds `n` every time.\n\n    total += n\n\nSo which "
        "numbers should reach that line? Try `[1, 2]` by hand."
    )
    frees = [scan(reply[:cut], 0).free for cut in range(1, len(reply) + 1)]

    assert frees == sorted(frees)
    assert reply[: frees[-1]] == "Good question! Your loop adds "


ENCODED = "aWYgbiAlIDIgPT0gMDogdG90YWwgKz0gbg"  # base64 of a fix, unpadded: no trigger in it


@pytest.mark.parametrize("size", [0, 3])
@pytest.mark.parametrize("word", [ENCODED, "6966206e20252032203d3d2030"], ids=["base64", "hex"])
def test_a_word_that_may_be_encoded_code_waits_for_the_check(word: str, size: int) -> None:
    reply = f"Decode this: {word} and you have it. Then run the tests."
    pieces, checks = stream(reply, size)

    assert word[:4] not in free_text(pieces)  # fed a few letters at a time, none went out
    assert free_text(pieces).startswith("Decode this: ")
    assert free_text(pieces).endswith("Then run the tests.")
    assert checks


def test_long_words_and_numbers_of_prose_go_out_unchecked() -> None:
    reply = "Internationalization is long, and so is 2024 or sumOfEvens. Try it."
    pieces, checks = stream(reply, 3)

    assert free_text(pieces) == reply
    assert checks == []


def test_a_change_said_in_words_waits_from_the_operator_it_names() -> None:
    reply = "Change the minus on line 5 to a plus. Then run the tests."
    pieces, checks = stream(reply, 3)

    assert free_text(pieces) == "Change the  Then run the tests."
    assert checks == ["Change the minus on line 5 to a plus."]


@pytest.mark.parametrize(
    ("reply", "word"),
    [
        ("Decode this: if%20n%20%25%202%20%3D%3D%200 and you have it. Run it.", "if%20"),
        ("On line 6, decode: erghea gbgny. Then run the tests.", "erghea"),
        ("Negate the check on line 4. Then run the tests.", "Negate the check"),
        ("On line 4, change the 1 to MA==. Then run the tests.", "MA"),
        ("Try vs a % 2 == 0: gbgny += a in the loop. Then run the tests.", "vs a"),
        ("Use and instead of or on line 2. Then run the tests.", "and"),
        ("Write or instead of and in the return. Then run the tests.", "or"),
        ("Use not in rather than in here. Then run the tests.", "not in"),
        ("Use strict inequality rather than loose inequality. Then run the tests.", "strict"),
        ("Use triple equals instead of double equals. Then run the tests.", "triple"),
    ],
    ids=[
        "percent-encoded",
        "rot13 after a colon",
        "a negation",
        "short base64",
        "rot13 inside a sentence",
        "and or in words",
        "and or, the operator after",
        "a keyword in words",
        "a strict comparison in words",
        "a strict comparison by its characters",
    ],
)
def test_other_encodings_and_negations_wait_for_the_check(reply: str, word: str) -> None:
    pieces, checks = stream(reply, 3)

    assert word not in free_text(pieces)
    assert free_text(pieces).endswith("Run it." if "Run it" in reply else "Then run the tests.")
    assert checks


@pytest.mark.parametrize("size", [0, 1])
@pytest.mark.parametrize(
    ("reply", "held"),
    [
        ("Line 2 should simply be return n * 2 and then the test passes.", "* 2"),
        ("Write n*2 instead of n+2, then run it.", "*2"),
        ("It's not n + 2, it's n * 2.", "* 2"),
        ("Try n % 2 there.", "% 2"),
        ("Line 2 should be return n *2 instead.", "*2"),
        ("yours: n + 2, correct: n / 2", "/ 2"),
        ("Apply this:\n\n-return count\n+return total\n", "return total"),
        ("-    return n + 2\n+    return n * 2\n", "return n * 2"),
    ],
)
def test_code_written_plainly_or_as_a_bare_diff_waits_for_the_check(
    reply: str, held: str, size: int
) -> None:
    pieces, checks = stream(reply, size)

    assert held not in free_text(pieces)
    assert any(held in checked for checked in checks)


@pytest.mark.parametrize(
    "reply",
    [
        "This is **important** here, see? And more words follow now.",
        "About 50% of the numbers are even, right? More words here.",
        "In C++ it differs from Python. More words here.",
        "- a list item here\n- another one\n--\nAnd a last line.",
    ],
)
def test_emphasis_percentages_and_list_markers_are_not_operators(reply: str) -> None:
    pieces, checks = stream(reply)

    assert checks == []
    assert len(pieces) > 5  # word by word
