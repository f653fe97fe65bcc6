"""What of a reply still being streamed may be shown now, and what must wait for the leak guard.

Pure functions, no I/O (the chat's stream, `koan.chat.streaming`, runs the guard). Prose goes
out as it arrives; everything a fix could be made of is held until the guard has checked the
reply up to its end:

- a fenced block, until its closing fence;
- a line that starts like code (indented, a keyword, an assignment, a call, a bracket, a
  diff's `-` or `+` before code), and
  the code-looking lines after it, until a line that is not code;
- in a prose line, from the first character that could begin code or a quotation (a backtick,
  a bracket, `=`, `<`, `>`, `;`, a quote, a backslash or `&`, or an arithmetic operator between
  operands) to the end of that sentence: inline spans, "replace `X` with `Y`", a string literal
  holding a program, code written plainly ("line 2 should be return n * 2");
- a held sentence that ends with a colon introduces what follows: it waits with the block
  after it; and a colon inside a prose line followed by a word that begins code, as written or
  in ROT13 ("should read: return ...", "decode: erghea ..."), holds from there, as a trigger
  does;
- in a prose line, from a word that may be encoded code (base64, base32, hex, `%XX`), a code
  word in ROT13 ("vs a % 2 ..."), a word naming an operator ("minus"), or a keyword that the
  words beside it name as one ("use and instead of or", `koan.llm.verbal.names_operator`), to
  the end of that sentence. A keyword waits for the word after it, and the last word so far
  waits while it may still become one of these, so no part of a fix said in words is shown
  before the guard has read it.

The text scanned is the reply as the learner reads it: the caller drops characters that take
no room and folds look-alike letters (`koan.llm.patches.fold`), so `іf` with a Cyrillic і
starts code as `if` does.

A line's first word is held until it shows whether the line is prose ("Look at", "What does")
or code ("total = 0", "items.sort()"), except for common sentence openings, so the first word
of a reply goes out as soon as it arrives. `scan` is deterministic in the text: more text never
changes what was found releasable before.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from koan.llm.patches import looks_like_code, strip_markers, visible
from koan.llm.verbal import KEYWORD, names_operator


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\S+", text))


# Characters that start a held stretch inside a prose line (`&`: a character reference, `&#61;`).
TRIGGERS = frozenset('`([{<>=;\\"&')
# Words that begin code at the start of a line (lower case; "If you..." is prose).
_CODE_WORDS = _words(
    """def class return for while if elif else try except finally with import from yield raise
    assert pass break continue function const let var async await throw switch case export
    new delete typeof del not lambda global nonlocal print console module require do"""
)
# Openings of a prose sentence, released before the next word shows (the first token).
_OPENINGS = _words(
    """what why how when where which who whose look let let's good great nice sure yes no it
    it's its you you're your the this that these those there here in on at if for so now
    first next then try think consider check notice remember before after a an i i'm we can
    could do does did is are was were have has hmm ok okay almost close well right one two
    each every some all as also and but or because since while with without to start step
    hint note tip imagine suppose take compare run read walk trace ask keep make see write
    use great excellent exactly perfect nearly interesting"""
    """ gut gute guter was wie warum wo schau du dein deine ich das die der es bien très que
    pourquoi comment regarde tu ton ta c'est bueno buena muy qué por cómo mira"""
)
_MARKER = re.compile(
    r"[ \t]*(?:(?:>[ \t]?)+|(?:[-*+•]|\d{1,3}[.)])[ \t]+|#{1,6}[ \t]+|\*{1,2}(?=\w)|_(?=\w))*"
)
_NUMBER_PREFIX = re.compile(r"[ \t]*(?:[Ll]ine[ \t]*)?\d{1,4}\b")
_WORD = re.compile(r"[^\W\d][\w$']*")


@dataclass(frozen=True, slots=True)
class Scan:
    """`free`: the text up to here may be shown as it is. `unit`: when not None, the text up
    to here is ready for the guard: check `text[:unit]`, then show up to `unit`."""

    free: int
    unit: int | None = None


def scan(text: str, start: int, *, final: bool = False) -> Scan:
    """Where the text already shown up to `start` can go on to, given all the text so far
    (`final`: the model has finished, so nothing more is coming)."""
    if start >= len(text):
        return Scan(start)
    pos = start
    line_start = text.rfind("\n", 0, start) + 1
    while True:
        kind = _line_kind(text, line_start, final)
        if kind is None:
            return Scan(pos)
        if kind == "fence":
            end = _fence_end(text, line_start, final)
            return Scan(line_start, end)
        if kind == "code":
            end = _code_run_end(text, line_start, final)
            return Scan(line_start, end)
        # prose (or a blank line): release up to the first trigger
        line_end = text.find("\n", line_start)
        stop = len(text) if line_end < 0 else line_end + 1
        begin = max(pos, line_start)
        trigger = next((i for i in range(begin, stop) if text[i] in TRIGGERS), None)
        finders = (_operator_sign, _encoded_word, _operator_word, _keyword_word, _rot13_word)
        for found in finders:
            at = found(text, begin, stop if trigger is None else trigger, final)
            if at is not None:
                trigger = at
        # A colon decided before (its word whole) decides the same again: look from just before.
        after = max(line_start, pos - 1)
        labelled = _code_after_colon(text, after, stop if trigger is None else trigger, final)
        if labelled is not None:
            if labelled < 0:  # too early to say whether code follows the colon
                return Scan(-labelled - 1)
            trigger = labelled
        if trigger is None:
            if line_end < 0:
                return Scan(stop)
            pos = line_start = stop
            continue
        end = _sentence_end(text, trigger, final)
        if end is not None and text[trigger:end].rstrip().endswith(":") and text[end - 1] == "\n":
            end = _lead_in_end(text, end, final)
        return Scan(trigger, end)


# An arithmetic operator between operands, as code is written in a sentence ("line 2 should
# be return n * 2", "write n % 2 instead"): the signs the guard reads bare code by
# (`koan.llm.encodings.bare_code`) that are not triggers already. Spaces on both sides, an
# operand on both sides, or a space before and a number after ("n *2") make it an operator;
# "**bold**", "50% of" and "C++ is" are not.
_SIGN = re.compile(r"[-+*/%]*[+*/%][-+*/%]*")
_OPERAND = re.compile(r"[\w)\]'\"]")


def _operator_sign(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, where an arithmetic operator between operands starts; or one at the
    end of the text so far, while the character after it has not arrived."""
    for match in _starts(_SIGN, text, begin, stop):
        before = text[match.start() - 1 : match.start()]
        after = text[match.end() : match.end() + 1]
        if not after:
            if not final:
                return match.start()  # the next character decides
            continue
        spaced = before in {" ", "\t"} and (after in {" ", "\t"} or after.isdigit())
        if spaced or (_OPERAND.match(before) and _OPERAND.match(after)):
            return match.start()
    return None


# A word that may be code encoded (base64, base32, hex, percent escapes): long, of their
# alphabet, with a digit or a capital inside it, or short and padded (`Kw==` is `+`), or
# holding a `%XX`; and the end of the text so far, which may still grow into one.
_ENCODED = re.compile(
    r"(?<![\w+/%])(?:[A-Za-z0-9+/_-]{8,}=*|[A-Za-z0-9+/]{2,}={1,6}|\S*%[0-9A-Fa-f]{2}\S*)"
    r"(?=[\s.,;:!?)]|$)"
)
_ENCODED_START = re.compile(r"(?<![\w+/%])[A-Za-z0-9+/_%-]+=*$")
# A name written in camel case ("sumOfEvens") is a name, not base64.
_CAMEL = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+|(?:[A-Z][a-z]+){2,}")


def _looks_encoded(word: str, *, whole: bool = True) -> bool:
    # Still growing, a run of digits may yet be hex ("6966..."); whole, it is a number.
    digits = re.search(r"\d", word) and (not whole or re.search(r"[A-Za-z]", word))
    if digits or re.search(r"[+/=%]", word):
        return True
    if re.search(r"[a-z][A-Z]", word) and not (whole and _CAMEL.fullmatch(word)):
        return True
    # Still growing, a few capitals may be base64 or base32 of a character that padding will
    # end ("MA==" is `0`, "Kw==" `+`).
    return not whole and re.fullmatch(r"[A-Z][A-Za-z]{0,2}", word) is not None


def _sentence_start(text: str, at: int) -> bool:
    """Whether `at` begins a sentence: a line's first word, or the word after a `.`, `!`, `?`."""
    line_start = text.rfind("\n", 0, at) + 1
    if _MARKER.fullmatch(text, line_start, at) is not None:
        return True
    return re.search(r"[.!?][ \t]+$", text[max(line_start, at - 4) : at]) is not None


def _starts(pattern: re.Pattern[str], text: str, begin: int, stop: int) -> Iterator[re.Match[str]]:
    """Matches starting in [begin, stop), each read to its end even past `stop`."""
    for match in pattern.finditer(text, begin):
        if match.start() >= stop:
            return
        yield match


def _encoded_word(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, where a word that may be encoded code starts (held to the end of its
    sentence like a span: the guard reads it decoded)."""
    for match in _starts(_ENCODED, text, begin, stop):
        if _looks_encoded(match.group(0)):
            return match.start()
    if not final and stop == len(text):
        tail = _ENCODED_START.search(text, begin, stop)
        if tail is not None and _looks_encoded(tail.group(0), whole=False):
            # The first word of a sentence goes out as it comes.
            opening = tail.group(0).lower() in _OPENINGS and _sentence_start(text, tail.start())
            return None if opening else tail.start()
    return None


# Words that name an operator or a swap: a change said in words ("change the minus on line 3
# to a plus", "use strict equality instead of loose equality") waits from there, as a span does.
_OPERATOR_WORDS = [
    "plus",
    "minus",
    "times",
    "modulo",
    "modulus",
    "remainder",
    "less",
    "greater",
    "equal",
    "equals",
    "equality",
    "inequality",
    "unequal",
    "strict",
    "strictly",
    "loose",
    "loosely",
    "triple",
    "slash",
    "asterisk",
    "swap",
    "negate",
    "invert",
]
_OPERATOR_WORD = re.compile(rf"(?i)\b(?:{'|'.join(_OPERATOR_WORDS)})\b")
_WORD_END = re.compile(r"(?<![\w'])[A-Za-z]+$")


def _operator_word(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, where a word naming an operator starts; or the word the text so far
    ends with, while it may still become one."""
    match = _OPERATOR_WORD.search(text, begin, stop)
    if match is not None and (final or match.end() < len(text)):
        return match.start()
    if not final and stop == len(text):
        tail = _WORD_END.search(text, begin, stop)
        if tail is not None and any(w.startswith(tail.group(0).lower()) for w in _OPERATOR_WORDS):
            return tail.start()
    return None


# Keywords a fix may be dictated in ("use and instead of or", "not in rather than in"), and
# the start of one negating a condition ("put not in front of ...").
_KEYWORD_PREFIXES = frozenset(
    word[:n]
    for word in ("and", "or", "is", "in", "not", "true", "false", "none", "null", "break",
                 "continue", "elif", "if", "while")
    for n in range(1, len(word) + 1)
)  # fmt: skip
_KEYWORD_WORD = re.compile(rf"{KEYWORD.pattern}|(?i:\bnot\b)")
_NEGATING = re.compile(r"(?i)\b(?:put|add|insert|place)\s+(?:an?\s+)?$")


def _keyword_word(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, where a keyword naming an operator starts (the words around it say so,
    as `koan.llm.verbal` reads them): held from there to the end of its sentence, so no part
    of a fix said in words goes out unchecked. A keyword whose next word has not arrived, or a
    word that may still become one, waits for it."""
    for match in _starts(_KEYWORD_WORD, text, begin, stop):
        if names_operator(text, match.start(), match.end()):
            return match.start()
        if _NEGATING.search(text, max(0, match.start() - 20), match.start()):
            return match.start()
        if not final and re.fullmatch(r"\s*[A-Za-z]*", text[match.end() :]):
            return match.start()  # the word that decides is still to come
    if not final and stop == len(text):
        tail = _WORD_END.search(text, begin, stop)
        if tail is not None and tail.group(0).lower() in _KEYWORD_PREFIXES:
            return tail.start()
    return None


def _rot13_word(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, where a word that is a code word in ROT13 starts ("vs" is `if`,
    "erghea" is `return`): what follows may be code in ROT13 inside the sentence."""
    for match in _starts(_WORD, text, begin, stop):
        if match.end() == len(text) and not final:
            break
        if codecs.encode(match.group(0), "rot13") in _CODE_WORDS:
            return match.start()
    if not final and stop == len(text):
        tail = _WORD_END.search(text, begin, stop)
        if tail is not None:
            rot = codecs.encode(tail.group(0), "rot13")
            if len(rot) >= 2 and any(word.startswith(rot) for word in _CODE_WORDS):
                return tail.start()
    return None


_AFTER_COLON = re.compile(r":[ \t]+(?P<word>[^\W\d][\w$']*)")


def _code_after_colon(text: str, begin: int, stop: int, final: bool) -> int | None:
    """In a prose line, the first colon before `stop` followed by a word that begins code
    ("The line should read: if n % 2 ..."): where to hold from. -(colon + 1) while the word
    after a colon is not whole yet."""
    at = text.find(":", begin, stop)
    while at >= 0:
        match = _AFTER_COLON.match(text, at)
        if match is None:
            rest = text[at + 1 : stop]
            if not final and not rest.strip(" \t") and stop == len(text):
                return -(at + 1)  # ": " at the end so far: a word may follow
        elif match.end() == len(text) and not final:
            return -(at + 1)
        elif _begins_code(match.group("word")):
            return at + 1
        at = text.find(":", at + 1, stop)
    return None


def _begins_code(word: str) -> bool:
    # A word that begins code, as written or in ROT13 ("erghea" is `return`).
    return word in _CODE_WORDS or codecs.encode(word, "rot13") in _CODE_WORDS


def _line_kind(text: str, line_start: int, final: bool) -> str | None:
    """How the line at `line_start` begins: "fence", "code", "prose", or None while it is
    too early to say."""
    line_end = text.find("\n", line_start)
    complete = line_end >= 0 or final
    line = text[line_start:] if line_end < 0 else text[line_start:line_end]
    if complete and not line.strip():
        return "prose"
    if _DIFF_SIGN.match(line):
        return _line_kind(text, line_start + 1, final)  # a diff's line reads as its code
    if line.startswith(("    ", "\t")):
        return "code"
    stripped = line.lstrip(" ")
    if stripped.startswith(("```", "~~~")):
        return "fence"
    if stripped and stripped[0] in "`~" and len(stripped) < 3 and not complete:
        return None  # perhaps a fence
    marker = _MARKER.match(line)
    rest = line[marker.end() if marker else 0 :]
    if not rest:
        return "prose" if complete else None
    if rest[0].isdigit() and _NUMBER_PREFIX.match(rest):
        # "12 | for i in ...", "3 things to check": the whole line decides.
        return _by_whole_line(line, complete)
    word = _WORD.match(rest)
    if word is None:
        # A span opening the sentence is held by its trigger; anything else, by the line.
        return "prose" if rest[0] == "`" else _by_whole_line(line, complete)
    name, after = word.group(0), rest[word.end() :]
    if name in _CODE_WORDS:
        return "code"
    following = after.lstrip(" \t")
    if not following:
        if name[0].isupper() and name.lower() in _OPENINGS:
            return "prose"  # the first word of a sentence, out before the second arrives
        return _by_whole_line(line, complete)
    if after[0] in " \t":
        assignment = re.match(r"(?:[-+*/%]|//|\*\*|\|\||&&|\?\?)?=(?!=)", following)
        return "code" if assignment else "prose"
    if after[0] in ",:!?." and len(after) == 1:
        return _by_whole_line(line, complete)
    if after[0] in ",:!?" and after[1] in " \t":
        return "prose"  # "Yes, ...", "Note: ...", "Hmm? ..."
    if after[0] == "." and after[1] in " \t" and name[0].isupper():
        return "prose"  # "Good. ..."
    return "code"


def _by_whole_line(line: str, complete: bool) -> str | None:
    if not complete:
        return None
    return "code" if _code_line(line) else "prose"


def _code_line(line: str) -> bool:
    """A whole line that reads as code, character references decoded (`&nbsp;` indents)."""
    return looks_like_code(strip_markers(visible(_DIFF_SIGN.sub("", line))))


# A line of a diff without its fence: `-` or `+` and the code ("+return n * 2"); "--", "++"
# and "- item" are not.
_DIFF_SIGN = re.compile(r"^[-+](?=[^-+\s])")


def _fence_end(text: str, line_start: int, final: bool) -> int | None:
    """The end of the fenced block opening at `line_start` (after its closing fence line)."""
    opener_end = text.find("\n", line_start)
    if opener_end < 0:
        return len(text) if final else None
    fence = re.match(r"[ \t]*(`{3,}|~{3,})", text[line_start:])
    assert fence is not None
    closing = re.compile(rf"^[ \t]*{re.escape(fence.group(1))}[ \t]*$", re.MULTILINE)
    found = closing.search(text, opener_end + 1)
    if found is None:
        return len(text) if final else None
    after = text.find("\n", found.end())
    if after >= 0:
        return after + 1
    return len(text) if final else None


def _code_run_end(text: str, line_start: int, final: bool) -> int | None:
    """The end of the run of code-looking lines starting at `line_start`: the start of the
    first line after it that is blank or not code (known once that line is whole)."""
    line_end = text.find("\n", line_start)
    if line_end < 0:
        return len(text) if final else None
    at = line_end + 1
    while True:
        next_end = text.find("\n", at)
        if next_end < 0:
            if not final:
                return None
            line = text[at:]
            if line.strip() and _code_line(line):
                return len(text)
            return at
        line = text[at:next_end]
        if not line.strip() or not _code_line(line):
            return at
        at = next_end + 1


def _sentence_end(text: str, start: int, final: bool) -> int | None:
    """The end of the sentence that `start` is in: after a `.`, `!` or `?` that is followed by
    whitespace (outside inline code), or after the end of the line."""
    in_span = False
    for i in range(start, len(text)):
        char = text[i]
        if char == "\n":
            return i + 1
        if char == "`":
            in_span = not in_span
        elif char in ".!?" and not in_span:
            if i + 1 >= len(text):
                break
            if text[i + 1] in " \t\n":
                return i + 1
    return len(text) if final else None


def _lead_in_end(text: str, end: int, final: bool) -> int | None:
    """A held sentence ending in a colon goes out with the block it introduces."""
    at = end
    while True:
        line_end = text.find("\n", at)
        if line_end < 0:
            if not final and not text[at:].strip():
                return None
            break
        if text[at:line_end].strip():
            break
        at = line_end + 1
    kind = _line_kind(text, at, final)
    if kind is None:
        return len(text) if final else None
    if kind == "fence":
        return _fence_end(text, at, final)
    if kind == "code":
        return _code_run_end(text, at, final)
    return end
