"""Code a reply hands over in a form the learner decodes in a moment, read as decoded.

Pure functions, no I/O. The leak guard (`koan.llm.leak_check`) reads a reply through `revealed`,
so code given as base64 or hex, written backwards or in ROT13 (a line, or a stretch of a
sentence), as a list of characters or of character codes to join, or cut into pieces (inline
spans, lines, string literals) to put together, is checked as the code it decodes to: its
solution score, and the programs it makes of the learner's attempt, run in the sandbox like any
other suggestion. So is a fix of one character or a few given encoded ("replace `-` with
`Kw==`"): the sentence is read again with it decoded.

A decoding counts only when what it gives reads as code (it parses, or looks like a line of
code) and, for the transforms any text survives (reversing, ROT13, joining), when it reads
more like the learner's code than the text it came from: its words are the language's keywords
and builtins and the names in the attempt and the solution (`vocabulary`). Text that decodes to
words, or to nothing readable, is left as it is, so the reply's prose is unchanged.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import functools
import itertools
import keyword
import re
import textwrap
from collections.abc import Callable, Iterator

from koan.llm import escapes

_JS_WORDS = frozenset(
    re.findall(
        r"\S+",
        """function return const let var if else for while do break continue switch case default
    new typeof instanceof of in this null undefined true false class extends await async throw
    try catch finally length push pop slice map filter reduce console log Math Object Array
    String Number JSON module exports require""",
    )
)
_BASE_WORDS = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | _JS_WORDS
_WORD = re.compile(r"[A-Za-z_$][\w$]*")

# A run of base64 (or base64url) long enough to hold a statement, padded or not.
_BASE64 = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{6,}={0,2}(?![\w+/=-])")
# Hex: a run of digit pairs, `\x..` escapes, or `0x..`/pairs separated by spaces or commas.
_HEX = re.compile(
    r"(?<![\w\\])(?:[0-9A-Fa-f]{2}){4,}(?!\w)"
    r"|(?:\\x[0-9A-Fa-f]{2}){6,}"
    r"|(?<![\w])(?:(?:0x)?[0-9A-Fa-f]{2}(?:[ \t]*,[ \t]*|[ \t]+)){5,}(?:0x)?[0-9A-Fa-f]{2}(?!\w)"
)
_CHAR = r"""'(?:\\.|[^'\\\n]){1,2}'|"(?:\\.|[^"\\\n]){1,2}"|\d{1,3}"""
# A bracketed list of single characters or of character codes, to be joined.
_CHARS = re.compile(rf"[\[(]\s*(?:(?:{_CHAR})\s*,\s*){{4,}}(?:{_CHAR})\s*,?\s*[\])]")
# String literals joined with `+` ("'if n % 2' + ' == 0:'").
_LITERAL = r"""'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*\""""
_CONCAT = re.compile(rf"(?:{_LITERAL})(?:\s*\+\s*(?:{_LITERAL}))+")
_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_FENCE = re.compile(r"^([ \t]*(`{3,}|~{3,})[^\n]*\n)(.*?)(^[ \t]*\2[ \t]*$)", re.M | re.S)
# Characters code keeps when written backwards or in ROT13, and prose mostly lacks.
_CODE_MARK = re.compile(r"[=<>()\[\]{};%+*/]")
_STATEMENT_WORD = re.compile(
    r"(?:return|yield|raise|throw|break|continue|pass|del|await|let|const|var)\b"
)


def vocabulary(*code: str) -> frozenset[str]:
    """The words code is written in: the languages' keywords and builtins, and the names in
    `code` (the learner's attempt, the starter, the solution)."""
    names = {word for text in code for word in _WORD.findall(text)}
    return _BASE_WORDS | frozenset(names)


def revealed(text: str, known: frozenset[str], attempt: str = "") -> str:
    """The reply with what it gives encoded decoded in place, and the pieces it asks to put
    together appended, put together (`known`: the words of `vocabulary`). The reply itself
    when there is nothing of the sort, which is most replies."""
    found: list[str] = []
    decoded = _decode_in_place(text, known, found)
    # Each piece also on its own, as an instruction to use it: in place, it may sit in a
    # sentence that says nothing of what to do with it ("Decode this: ..."). A piece of the
    # learner's own code is a quote, encoded or not, not something to use.
    theirs = "".join(attempt.split())
    pieces = [
        code
        for code in dict.fromkeys([*(c for c in found if "\n" not in c), *_joined(decoded, known)])
        if not theirs or "".join(code.split()) not in theirs
    ]
    added = [_as_shown(code) for code in pieces] + _short_readings(decoded, known)
    if not added:
        return decoded
    return decoded + "\n\n" + "\n\n".join(added)


def _as_shown(code: str) -> str:
    # A piece of code the learner is told to use, as the guard reads an instruction to.
    if "\n" in code:
        return f"```\n{code}\n```"
    return f"Use `{code}`."


# -- decoding ------------------------------------------------------------------------------------


def _decode_in_place(text: str, known: frozenset[str], found: list[str]) -> str:
    out: list[str] = []
    at = 0
    for match in _FENCE.finditer(text):
        out.append(_decode_prose(text[at : match.start()], known, found))
        out.append(match.group(1) + _decode_block(match.group(3), known) + match.group(4))
        at = match.end()
    out.append(_decode_prose(text[at:], known, found))
    return "".join(out)


def _decode_prose(text: str, known: frozenset[str], found: list[str]) -> str:
    text = "\n".join(_decode_line(line, known, found) for line in text.split("\n"))
    parts = _SPAN.split(text)  # text, span, text, span, ..., text
    for i, part in enumerate(parts):
        if i % 2:
            parts[i] = _decode_span(part, known, found)
            continue
        part = _decode_stretches(part, known, found)
        for pattern, decode in _DECODERS:
            part = _decode_runs(pattern, decode, part, found)
        parts[i] = part
    return "".join(parts)


# -- code written plainly in a sentence -----------------------------------------------------------

# A sentence's pieces as code reads them: names, numbers, string literals, operators.
_BARE_PIECE = re.compile(
    r"""[A-Za-z_$][\w$]*|\d+(?:\.\d+)?|(?<!\w)'[^'\n]*'(?!\w)|(?<!\w)"[^"\n]*"(?!\w)
    |===|!==|\*\*=|//=|==|!=|<=|>=|//|\*\*|\+=|-=|\*=|/=|%=|&&|\|\||=>|[!-/:-@\[-^{-~]""",
    re.VERBOSE,
)
# A quotation in prose: what it holds may be code ("change it to "if n % 2 == 0:"").
_QUOTED = re.compile(r"""(?<![\w`])(?:"(?P<d>[^"`\n]+)"|'(?P<s>[^'`\n]+)')(?![\w`])""")


def bare_code(text: str, known: frozenset[str]) -> str:
    """Code written in a sentence without any markup ("line 4 should be if n % 2 == 0: and
    it passes", a quoted "total += n", a table's cells) put in an inline span, as the learner
    reads it: the longest stretch of the exercise's words (`known`), numbers and operators,
    holding an operator, that parses. Prose words end a stretch, so prose is never a span."""
    if not _CODE_MARK.search(text):
        return text  # no operator, no bracket: no code
    out: list[str] = []
    for line in text.split("\n"):
        if line.lstrip().startswith("|"):
            # A table row: each cell on its own (`|` is an operator too).
            cells = line.split("|")
            out.append("|".join(_bare_in(cell, known, cell=True) for cell in cells))
        else:
            out.append(_bare_in(line, known))
    return "\n".join(out)


def _bare_in(text: str, known: frozenset[str], *, cell: bool = False) -> str:
    if not _CODE_MARK.search(text):
        return text
    parts = _SPAN.split(text)  # text, span, text, ...: spans are code already
    for i in range(0, len(parts), 2):
        parts[i] = _QUOTED.sub(lambda m: _quoted(m, known), parts[i])
        alone = not cell and len(parts) == 1 and "`" not in parts[i]
        parts[i] = "`".join(
            piece if j % 2 else _bare_runs(piece, known, alone=alone)
            for j, piece in enumerate(parts[i].split("`"))
        )
    return "".join(f"`{p}`" if i % 2 else p for i, p in enumerate(parts))


def _quoted(match: re.Match[str], known: frozenset[str]) -> str:
    code = match.group("d") or match.group("s") or ""
    if _CODE_MARK.search(code) and _all_known(code, known) and _reads_as_code(code):
        return f"`{code.strip()}`"
    return match.group(0)


def _all_known(code: str, known: frozenset[str]) -> bool:
    stripped = re.sub(r"'[^'\n]*'|\"[^\"\n]*\"", "''", code)
    return all(word in known for word in _WORD.findall(stripped))


# A verb "to be" just before a stretch's "not" ("it's not", "this is not"): the "not" is the
# sentence's, which says what the code should not be.
_COPULA_BEFORE = re.compile(r"(?i)(?:\b(?:is|are|was|were|be)|'s|’s)\s*$")
# What may stand before a line of code: list, quote and line-number markers.
_LINE_LEAD = re.compile(r"^\s*(?:(?:[-*+•>]|\d{1,4}[.):|])\s*)*")


def _bare_runs(text: str, known: frozenset[str], *, alone: bool) -> str:
    """`text` with its stretches of code in spans; `alone`: a whole line, where a stretch with
    no word of prose beside it is a line of code (a list item, a quote, a line of a block),
    read as one already."""
    out: list[str] = []
    at = 0
    for run in _bare_pieces(text, known):
        best: tuple[int, int] | None = None
        for first in run[:4]:
            if first.group(0) == "not" and _COPULA_BEFORE.search(text[: first.start()]):
                continue  # "it's not X": the sentence's "not", not the code's
            for last in reversed(run[-4:]):
                if last.group(0) == ",":
                    continue  # a comma ending a stretch ends the sentence's clause
                if last.end() <= first.start() or (
                    best is not None and last.end() - first.start() <= best[1] - best[0]
                ):
                    continue
                code = text[first.start() : last.end()]
                # A name or keyword in it: `['2']` or `4 % 2` alone may be a value named.
                if _CODE_MARK.search(code) and _WORD.search(code) and _reads_as_code(code):
                    best = (first.start(), last.end())
        if best is None:
            continue
        outside = _LINE_LEAD.sub("", text[: best[0]]) + text[best[1] :]
        if alone and not re.search(r"[A-Za-z0-9]", outside):
            continue
        if best is not None and best[0] >= at:
            out += [text[at : best[0]], f"`{text[best[0] : best[1]]}`"]
            at = best[1]
    out.append(text[at:])
    return "".join(out)


def _bare_pieces(text: str, known: frozenset[str]) -> Iterator[list[re.Match[str]]]:
    """Runs of pieces with nothing but spaces between them, each a word of `known`, a number,
    a string literal or an operator; a sentence's end ends a run. Runs of three pieces or more
    holding an operator or a bracket."""
    run: list[re.Match[str]] = []
    for piece in _BARE_PIECE.finditer(text):
        word = piece.group(0)
        after = text[piece.end() : piece.end() + 1]
        if word[0].isalpha() or word[0] in "_$":
            fits = word in known
        else:  # a number, a literal, an operator: not a full stop ending the sentence
            fits = not (word in ".!?" and not after.strip())
        if fits and run and text[run[-1].end() : piece.start()].strip():
            yield from _kept(run)
            run = []
        if fits:
            run.append(piece)
        else:
            yield from _kept(run)
            run = []
    yield from _kept(run)


def _kept(run: list[re.Match[str]]) -> Iterator[list[re.Match[str]]]:
    if len(run) >= 3 and any(_CODE_MARK.search(p.group(0)) for p in run):
        yield run


def _decode_runs(
    pattern: re.Pattern[str], decode: Callable[[str], str | None], text: str, found: list[str]
) -> str:
    return pattern.sub(lambda m: _replacement(decode(m.group(0)), m.group(0), found), text)


# Words, numbers and runs of other characters: what a sentence is read in, piece by piece.
_PIECE = re.compile(r"[A-Za-z_]\w*|\d+|[^\w\s`]+")
# Punctuation that ends a sentence or a clause rather than belonging to code.
_CLAUSE_END = re.compile(r"[.,!?]+")
_WORD_TRANSFORMS: tuple[Callable[[str], str], ...] = (
    lambda text: codecs.encode(text, "rot13"),
    lambda text: text[::-1],
)


@functools.lru_cache(maxsize=64)
def _transformed(known: frozenset[str]) -> tuple[frozenset[str], ...]:
    """The words of `known` as each transform writes them (both transforms undo themselves,
    so a word is the exercise's once transformed when it is in here)."""
    return tuple(frozenset(transform(word) for word in known) for transform in _WORD_TRANSFORMS)


def _decode_stretches(text: str, known: frozenset[str], found: list[str]) -> str:
    """Code in ROT13 or written backwards inside a sentence, with prose on both sides ("Try
    vs a % 2 == 0: gbgny += a in the loop"): the longest stretch of pieces that read as the
    exercise's words once transformed (numbers and operators between them as they are), when
    the stretch, transformed, is code (`_closer`)."""
    words = {w for w in _WORD.findall(text) if len(w) >= 2 and w not in known}
    for transform, image in zip(_WORD_TRANSFORMS, _transformed(known), strict=True):
        if words.isdisjoint(image):
            continue  # no word of it is the exercise's once transformed: most replies
        at = 0
        while True:
            best = _best_stretch(text, at, known, image, transform)
            if best is None:
                break
            start, end, code = best
            found.append(code)
            text = f"{text[:start]}`{code}`{text[end:]}"
            at = start + len(code) + 2
    return text


def _best_stretch(
    text: str,
    at: int,
    known: frozenset[str],
    image: frozenset[str],
    transform: Callable[[str], str],
) -> tuple[int, int, str] | None:
    for run in _runs(text, at, known, image):
        best: tuple[int, int, str] | None = None
        # Prose words at either end may read as the exercise's words too ("a" is "n").
        ends = [p for p in run[-3:] if not _CLAUSE_END.fullmatch(p.group(0))]
        for first in run[:3]:
            for last in ends:
                if last.start() <= first.start():
                    continue  # a word alone, "erghea", is a word
                stretch = text[first.start() : last.end()]
                code = transform(stretch)
                longer = best is None or last.end() - first.start() > best[1] - best[0]
                if longer and _closer(code, stretch, known):
                    best = (first.start(), last.end(), code)
        if best is not None:
            return best
    return None


def _runs(
    text: str, at: int, known: frozenset[str], image: frozenset[str]
) -> Iterator[list[re.Match[str]]]:
    """Runs of pieces that may be transformed code: words the transform makes the exercise's
    (`image`), numbers and operators, with nothing but spaces between them and no sentence
    ending inside, holding a word of two letters or more that is the exercise's only once
    transformed."""
    run: list[re.Match[str]] = []
    keyed = False
    for piece in _PIECE.finditer(text, at):
        word = piece.group(0)
        if word[0].isalpha() or word[0] == "_":
            fits = word in image
            own = fits and len(word) >= 2 and word not in known
        else:
            after = text[piece.end() : piece.end() + 1]
            fits = not (word[0] in ".!?" and _CLAUSE_END.fullmatch(word) and not after.strip())
            own = False
        if fits and (not run or not text[run[-1].end() : piece.start()].strip()):
            run.append(piece)
            keyed = keyed or own
            continue
        if keyed and len(run) >= 2:
            yield run
        run, keyed = ([piece], own) if fits else ([], False)
    if keyed and len(run) >= 2:
        yield run


def _replacement(code: str | None, original: str, found: list[str]) -> str:
    if code is None or not _reads_as_code(code):
        return original
    code = code.strip("\n")
    found.append(code)
    return f"\n\n```\n{code}\n```\n\n" if "\n" in code else f"`{code}`"


def _decode_block(body: str, known: frozenset[str]) -> str:
    """A fenced block that is base64 or hex as a whole (lines wrapped), or code written
    backwards."""
    squeezed = "".join(body.split())
    for decode in (_from_base64, _from_hex):
        if len(squeezed) >= 16:
            code = decode(squeezed)
            if code is not None and _reads_as_code(code):
                return code.rstrip("\n") + "\n"
    backwards = body.rstrip("\n")[::-1].strip("\n")
    if _CODE_MARK.search(body) and _closer(backwards, body, known):
        return backwards + "\n"
    return body


def _decode_span(span: str, known: frozenset[str], found: list[str]) -> str:
    for pattern, decode in _DECODERS:
        if pattern.fullmatch(span.strip()):
            code = decode(span.strip())
            if code is not None and _reads_as_code(code):
                return _replacement(code, span, found)
    for code in _transforms(span):
        if _closer(code, span, known):
            found.append(code)
            return f"`{code}`"
    return f"`{span}`"


def _decode_line(line: str, known: frozenset[str], found: list[str]) -> str:
    """A prose line holding code written backwards or in ROT13, or with some of its characters
    escapes (`if n \\x25 2 ...`): the whole line, or what follows a colon ("Read it backwards:
    n =+ latot"). Backwards and ROT13 text need no operator: "return total" in ROT13 is read
    when its words are the exercise's."""
    if "`" in line or not re.search(r"[A-Za-z]", line):
        return line
    head, sep, tail = line.partition(": ")
    parts = [(head + sep, tail, "")] if sep and tail.strip() else []
    # Up to the end of its sentence, if prose follows it ("...: erghea gbgny. Why?").
    end = re.search(r"\.\s+(?=[A-Z])", tail)
    if sep and end is not None:
        parts.append((head + sep, tail[: end.start()], tail[end.start() :]))
    parts.append(("", line, ""))
    escaped = escapes.ONE_ESCAPE.search(line) is not None
    for lead, stretch, rest in parts:
        if escaped:
            code = escapes.unescape(stretch.strip())
            if code != stretch.strip() and _reads_as_code(code):
                found.append(code)
                return f"{lead}`{code}`{rest}"
        for code in _transforms(stretch.strip()):
            if _closer(code, stretch, known):
                found.append(code)
                return f"{lead}`{code}`{rest}"
    return line


def _transforms(text: str) -> Iterator[str]:
    yield text[::-1]
    yield codecs.encode(text, "rot13")


def _from_base64(run: str) -> str | None:
    run = run.replace("-", "+").replace("_", "/").rstrip("=")
    if len(run) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _text(raw)


def _from_hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[\s,]", "", run)
    try:
        return _text(bytes.fromhex(digits))
    except ValueError:
        return None


def _from_chars(run: str) -> str | None:
    try:
        items = ast.literal_eval("[" + run[1:-1] + "]")
    except (SyntaxError, ValueError):
        return None
    if all(isinstance(item, str) and len(item) == 1 for item in items):
        return "".join(items)
    if all(isinstance(item, int) and 9 <= item < 127 for item in items):
        return "".join(chr(item) for item in items)
    return None


def _from_concat(run: str) -> str | None:
    try:
        parts = [ast.literal_eval(m.group(0)) for m in re.finditer(_LITERAL, run)]
    except (SyntaxError, ValueError):
        return None
    return "".join(p for p in parts if isinstance(p, str))


_DECODERS: tuple[tuple[re.Pattern[str], Callable[[str], str | None]], ...] = (
    (_BASE64, _from_base64),
    (_HEX, _from_hex),
    (_CHARS, _from_chars),
    (_CONCAT, _from_concat),
    *escapes.DECODERS,
)


def _text(raw: bytes) -> str | None:
    """Bytes that are readable text (what a learner would take from a decoder), else None."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) < 4 or not all(c.isprintable() or c in "\n\t\r" for c in decoded):
        return None
    return decoded.replace("\r\n", "\n")


# -- what counts as code -------------------------------------------------------------------------


def _parses(code: str) -> bool:
    if _python(code):
        return True
    # One line of a longer statement: what it opens, closed ("if (x) {", "PAIRS = [(1, 2),").
    closed = code.rstrip().rstrip(",") + _closers(code)
    if closed != code and (_python(closed) or _js_statement(closed)):
        return True
    if code.rstrip().endswith(":"):
        # The head of a block ("if n % 2 == 0:") is code the line under it completes.
        last = code.rstrip().splitlines()[-1]
        body = last[: len(last) - len(last.lstrip())] + "    pass"
        try:
            ast.parse(code.rstrip() + "\n" + body)
        except (SyntaxError, ValueError):
            return False
        return True
    return _js_statement(code)


def _python(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _closers(code: str) -> str:
    """What closes the brackets `code` leaves open, or "" when it closes one it did not open."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    for char in code:
        if char in pairs:
            stack.append(pairs[char])
        elif char in ")]}" and (not stack or stack.pop() != char):
            return ""
    return "".join(reversed(stack))


def _js_statement(code: str) -> bool:
    # No JavaScript parser here: balanced brackets, ending like a statement or a block.
    depth = 0
    for char in code:
        depth += (char in "([{") - (char in ")]}")
        if depth < 0:
            return False
    return depth == 0 and bool(re.search(r"[;})]\s*$", code))


def _reads_as_code(code: str) -> bool:
    """Decoded text that is code: it parses (or reads as a JavaScript statement) and is more
    than words."""
    stripped = code.strip()
    if not stripped or not (re.search(r"[^\w\s]", stripped) or _STATEMENT_WORD.match(stripped)):
        return False  # words alone ("keep going"), unless a statement ("return total")
    return _parses(textwrap.dedent(code).strip("\n")) and bool(
        _CODE_MARK.search(stripped)
        or ":" in stripped
        or "\n" in stripped
        or _STATEMENT_WORD.match(stripped)
    )


def _known_share(text: str, known: frozenset[str]) -> float:
    words = _WORD.findall(text)
    if not words:
        return 0.0
    return sum(w in known for w in words) / len(words)


def _closer(code: str, original: str, known: frozenset[str]) -> bool:
    """Whether `code` (a transform of `original` any text survives) is code and reads far more
    like it than the original does."""
    if not _reads_as_code(code):
        return False
    share = _known_share(code, known)
    return share >= 0.75 and share >= _known_share(original, known) + 0.3


# -- one character of code or a few, encoded -----------------------------------------------------

# A span that may be a short encoded run: base64 or base32, hex, `\x`/`\u` escapes, `%XX`
# escapes, or a bracketed list of a few characters or character codes.
_SHORT_SPAN = re.compile(
    r"[A-Za-z0-9+/]{2,12}={0,6}|(?:\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})+|(?:%[0-9A-Fa-f]{2})+"
    rf"|[\[(]\s*(?:{_CHAR})(?:\s*,\s*(?:{_CHAR})){{0,7}}\s*,?\s*[\])]"
)
# In prose, only a run nothing but an encoding writes: padded base64 or base32, or escapes.
_SHORT_PROSE = re.compile(
    r"(?<![\w+/=\\%-])"
    r"(?:[A-Za-z0-9+/]{2,7}={1,6}|(?:\\x[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4})+|(?:%[0-9A-Fa-f]{2})+)"
    r"(?![\w+/=%-])"
)
# What a short run in prose has: padding after a letter or digit, an escape.
_SHORT_MARK = re.compile(r"[\w+/]=|\\[xu]|%[0-9A-Fa-f]{2}")
_FRAGMENT_TOKEN = re.compile(
    r"""\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_$][\w$]*)|(?P<str>'[^'\n]*'|"[^"\n]*")
    |(?P<op>===|!==|\*\*=|//=|==|!=|<=|>=|//|\*\*|\+=|-=|\*=|/=|%=|&&|\|\||[-+*/%<>=!&|^~:.,()\[\]{}]))""",
    re.VERBOSE,
)
# Words that are operators or constants of the languages, not names.
_KEYWORD_TOKENS = frozenset(keyword.kwlist) | {"true", "false", "null", "typeof", "instanceof"}
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def _short_readings(text: str, known: frozenset[str]) -> list[str]:
    """The sentences that hold a character of code or a few encoded (`Kw==` is `+`, `[60, 61]`
    is `<=`, `\\x30` is `0`), with those decoded: "replace `-` with `Kw==`" reads as "replace
    `-` with `+`". A run this short may mean what it says (`[43]` is a list too), so the
    sentence is read both ways: as written in the reply, and decoded after it."""
    if "`" not in text and not _SHORT_MARK.search(text):
        return []  # no span, no padding or escape: most replies
    prose = _FENCE.sub("\n", text)
    masked = _SPAN.sub(lambda m: "_" * len(m.group(0)), prose)
    found: list[tuple[int, int, str]] = []  # where in `prose`, and the code
    for match in _SPAN.finditer(prose):
        run = match.group(1).strip()
        if _SHORT_SPAN.fullmatch(run):
            code = _short_code(run, known, marked=False)
            if code is not None:
                found.append((match.start(), match.end(), code))
    if _SHORT_MARK.search(masked):
        for match in _SHORT_PROSE.finditer(masked):
            code = _short_code(match.group(0), known, marked=True)
            if code is not None:
                found.append((match.start(), match.end(), code))
    if not found:
        return []
    found.sort()
    out = []
    ends = [m.end() for m in _SENTENCE_END.finditer(masked)] + [len(prose)]
    for start, end in itertools.pairwise([0, *ends]):
        pieces, at = [], start
        for first, last, code in found:
            if start <= first < end:
                pieces += [prose[at:first], f"`{code}`"]
                at = last
        if pieces:
            out.append("".join([*pieces, prose[at:end]]).strip())
    return out


def _short_code(run: str, known: frozenset[str], *, marked: bool) -> str | None:
    """What a short run decodes to when that is a fragment of code (`_fragment`). `marked`:
    the run is padded or escaped already; a span may also be unpadded base64 with a digit, `+`,
    `/` or a capital after its first letter in it (`Kz0` is `+=`; `Ok` stays a word), base32
    with a digit, or hex with a letter (`2b` is `+`; `30` stays a number)."""
    if run in known:
        return None
    if run[0] == "\\":
        decoded: str | None = escapes.unescape(run)
    elif run[0] == "%":
        decoded = escapes.from_percent(run) if len(run) > 3 else _percent_one(run)
    elif run[0] in "[(":
        decoded = _from_chars(run)
    else:
        decoded = _short_binary(run, marked)
    if decoded is None or decoded == run or not _fragment(decoded, known):
        return None
    return decoded.strip()


def _percent_one(run: str) -> str | None:
    char = chr(int(run[1:3], 16))
    return char if char.isprintable() else None


def _short_binary(run: str, marked: bool) -> str | None:
    body = run.rstrip("=")
    padded = body != run
    if not marked and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", run) and re.search(r"[A-Fa-f]", run):
        decoded = _short_text(lambda: bytes.fromhex(run))
        if decoded is not None:
            return decoded
    # Base64 pads with at most two `=`, base32 with up to six.
    base64_marked = padded or re.search(r"[\d+/]|.[A-Z]", body)
    base64_length = len(body) % 4 != 1 and len(run) % 4 in ((0,) if padded else (0, 2, 3))
    if base64_marked and base64_length and len(run) - len(body) <= 2:
        decoded = _short_text(
            lambda: base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        )
        if decoded is not None:
            return decoded
    base32_marked = padded or re.search(r"[2-7]", body)
    if base32_marked and (body.isupper() or body.islower()) and len(body) % 8 in (0, 2, 4, 5, 7):
        return _short_text(lambda: base64.b32decode(body + "=" * (-len(body) % 8), casefold=True))
    return None


def _short_text(decode: Callable[[], bytes]) -> str | None:
    try:
        text = decode().decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text and text.isprintable() else None


def _fragment(code: str, known: frozenset[str]) -> bool:
    """A few tokens of code on one line that say something a word does not: an operator, a
    number, a keyword (`+=`, `<=`, `0`, `is not`, `== 0`), names only if the exercise's."""
    code = code.strip()
    if not code or len(code) > 40:
        return False
    at, telling = 0, False
    while at < len(code):
        match = _FRAGMENT_TOKEN.match(code, at)
        if match is None or match.end() == at:
            return False
        name = match.group("name")
        if name is not None and name not in known:
            return False
        telling = telling or name is None or name in _KEYWORD_TOKENS
        at = match.end()
    return telling


# -- pieces to put together ----------------------------------------------------------------------


def _joined(text: str, known: frozenset[str]) -> Iterator[str]:
    """Code cut into pieces the reply asks to join: inline spans of one sentence, or lines of
    a paragraph, that are not code apart and are code together."""
    prose = _FENCE.sub("\n", text)
    for paragraph in re.split(r"\n[ \t]*\n", prose):
        spans = [s for s in _SPAN.findall(paragraph)]
        if 2 <= len(spans) <= 8:
            yield from _put_together(spans, known)
        lines = [ln for ln in paragraph.split("\n") if ln.strip() and "`" not in ln]
        # The lines after an introducing sentence ("Join these lines into one:").
        while lines and not _CODE_MARK.search(lines[0]):
            lines.pop(0)
        if 2 <= len(lines) <= 8 and not _parses("\n".join(ln.strip() for ln in lines)):
            yield from _put_together([ln.strip() for ln in lines], known)


def _put_together(pieces: list[str], known: frozenset[str]) -> Iterator[str]:
    if all(_parses(p.strip()) for p in pieces):
        return  # each is code already: read on its own
    # Between two word characters the cut may fall inside a name (`tot` + `al`) or between
    # two words; elsewhere a space keeps the tokens as they were. The best-known reading wins.
    options = [
        ("", " ") if a[-1:].isalnum() and b[:1].isalnum() else (" ", "")
        for a, b in itertools.pairwise(pieces)
    ]
    best: tuple[float, str] | None = None
    for joins in itertools.islice(itertools.product(*options), 64):
        code = pieces[0] + "".join(j + p for j, p in zip(joins, pieces[1:], strict=True))
        code = re.sub(r"[ \t]+", " ", code).strip()
        if _parses(code) and _CODE_MARK.search(code):
            share = _known_share(code, known)
            if best is None or share > best[0]:
                best = (share, code)
    if best is not None and best[0] >= 0.75:
        yield best[1]
