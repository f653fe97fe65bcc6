"""What a tutor reply suggests doing to the learner's code, as whole candidate programs.

Pure functions, no I/O: the leak check (`koan.llm.leak_check`) runs the programs built here
against the exercise's tests. A reply can hand over a fix in many shapes, so every shape is read
the same general way rather than by the kind of bug:

- code (fenced blocks, runs of code-looking lines) goes where the most similar lines of the
  learner's code are, or where nothing is similar it is inserted; a function replaces the
  learner's function of the same name;
- prose edits between inline spans ("replace `X` with `Y`", "change `X` to `Y`", "use `Y`
  instead of `X`", "`X` should be `Y`", "`X` -> `Y`", "on line N, ... `Y`");
- a lone code span is put in place of the most similar run of tokens.

List, quote and line-number markers and string-literal wrapping are stripped first, so a
solution written as `1. def f(...):` reads as code.
"""

from __future__ import annotations

import ast
import functools
import html
import json
import re
import textwrap
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from koan.llm import encodings, verbal

Form = Literal["function", "lines", "prose", "span", "combined", "words"]

DEFAULT_CAP = 8
# Two lines this alike are taken to be the same line, edited.
_SIMILAR = 0.55
# A span this alike to a run of the learner's tokens is an edit of that run.
_SPAN_SIMILAR = 0.5

_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# "1. ", "2) ", "- ", "* ", "+ ", "> " and "12 | ", "12: " before code.
_LIST_MARKER = re.compile(r"^[ \t]*(?:>[ \t]?)+|^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]")
_NUMBERED = re.compile(r"^[ \t]*(?:[Ll]ine[ \t]*)?(?P<n>\d{1,4})[ \t]*(?:[|:.)][ \t]?|[ \t])")
_CODE_WORD = re.compile(
    r"""^\s*(
        (def|class|return|for|while|if|elif|else|try|except|finally|with|import|from|yield|
         raise|assert|pass|break|continue|function|const|let|var|async|await|throw|switch|
         case|module\.exports|export)\b
        |[\]\)\}]
        |[\w.\[\]'"]+\s*(\+|-|\*|/|//|%|\*\*|\|\||&&|\?\?)?=\s*[^=\s]
        |[\w.]+\(.*\)\s*;?\s*$
    )""",
    re.VERBOSE,
)
_CODE_END = re.compile(r"[:{;(\[,]\s*$|^\s*[)\]}]+;?\s*$")
_PROSE = re.compile(r"^\s*[A-Z][a-z']*(?:\s+[A-Za-z',]+){3,}[.!?:]\s*$")
_TOKEN = re.compile(
    r"""("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\\n])*`)
    |(\d+(?:\.\d+)?)
    |([A-Za-z_$][\w$]*)
    |(===|!==|\*\*=|//=|>>=|<<=|\.\.\.|=>|==|!=|<=|>=|//|\*\*|\+=|-=|\*=|/=|%=|&&|\|\||\?\?|->|\+\+|--|[^\s\w])""",
    re.VERBOSE,
)
_MULTILINE_LITERAL = re.compile(
    r'"(?:[^"\\\n]|\\.)*\\n(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\\n(?:[^\'\\\n]|\\.)*\''
)
_LINE_REF = re.compile(r"(?i)\blines?\s+(?P<n>\d{1,4})\b")


@dataclass(frozen=True, slots=True)
class Edit:
    """One prose edit: `new` in place of `old`, of line `line`, or of what is most like it."""

    new: str
    old: str | None = None
    line: int | None = None
    evidence: str = ""
    role: str | None = None  # where a lone expression goes: "condition", "return" (`slot_of`)


@dataclass(frozen=True, slots=True)
class Candidate:
    """The learner's code as it would be after following the reply."""

    program: str
    form: Form
    evidence: str  # the part of the reply it came from


# -- reading the reply --------------------------------------------------------------------------


# Letters of other scripts drawn like Latin ones: `tоtal` with a Cyrillic о reads as `total`.
_LOOK_ALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјосрхуѕԁһԛԝ"  # Cyrillic
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧονρτυχαι"  # Greek
    "ɑɡɩʟ",
    "ABESIJKMHOPCTXYaeijocpxysdhqwABEZHIKMNOPTYXovptuxaiagil",
)


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) != 1:
        folded = char
    return folded.translate(_LOOK_ALIKES)


def fold(text: str) -> str:
    """The text with each character drawn like an ASCII one replaced by it (fullwidth forms,
    Cyrillic and Greek look-alikes, non-breaking spaces): one character for one, so positions
    in it are positions in `text`."""
    if text.isascii():
        return text
    return "".join(_fold_char(c) if not c.isascii() else c for c in text)


def invisible(char: str) -> bool:
    """A character that takes no room when shown (zero-width spaces and joiners, soft
    hyphens, direction marks): code strewn with them reads as the code."""
    return not char.isascii() and unicodedata.category(char) == "Cf"


def strip_invisible(text: str) -> str:
    """The text without characters that take no room when shown."""
    if text.isascii():
        return text
    return "".join(c for c in text if not invisible(c))


# HTML's code markup, which Markdown passes through: `<pre>` (with or without `<code>` inside)
# is a block, `<code>`, `<kbd>`, `<samp>`, `<tt>` on one line a span.
_PRE_TAG = re.compile(
    r"<pre\b[^>]*>[ \t]*\n?(?:[ \t]*<code\b[^>]*>)?(?P<body>.*?)(?:</code>\s*)?</pre\s*>",
    re.IGNORECASE | re.DOTALL,
)
_CODE_TAG = re.compile(
    r"<(?P<tag>code|kbd|samp|tt)\b[^>]*>(?P<body>[^`\n]*?)</(?P=tag)\s*>", re.IGNORECASE
)

# Markdown's span between double backticks (``x``), shown as `x` is.
_DOUBLE_SPAN = re.compile(r"(?<!`)``(?!`)([^`\n]+?)(?<!`)``(?!`)")


def visible(text: str) -> str:
    """The text as a learner reads it: HTML character references decoded (the hint panel's
    Markdown shows `&#61;` as `=`), characters that take no room dropped, look-alikes folded
    to ASCII, and HTML's code markup read as Markdown's (`<code>x</code>` as a span, `<pre>`
    as a fenced block). The guard reads this, so a reply cannot hide code from it in how it
    is spelt."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = html_code(text)
    if "``" in text:
        text = _DOUBLE_SPAN.sub(lambda m: f"`{m.group(1).strip()}`", text)
    return fold(strip_invisible(text))


def html_code(text: str) -> str:
    """The text with HTML code markup written as Markdown: a `<pre>` block fenced, a `<code>`
    (`<kbd>`, `<samp>`, `<tt>`) span in backticks; tags inside a block dropped."""
    text = _PRE_TAG.sub(
        lambda m: (
            "\n```\n" + re.sub(r"</?code\b[^>]*>", "", m.group("body")).strip("\n") + "\n```\n"
        ),
        text,
    )
    return _CODE_TAG.sub(lambda m: f"`{m.group('body')}`" if m.group("body").strip() else "", text)


def normalize_language(language: str | None) -> str:
    """python or javascript (anything else is treated like JavaScript's C-style syntax)."""
    lowered = (language or "").lower()
    return "python" if lowered in {"py", "python", "python3", ""} else "javascript"


def strip_markers(text: str) -> str:
    """Drop list, quote and line-number markers in front of code lines."""
    lines = text.splitlines()
    numbered = [m for m in (_NUMBERED.match(ln) for ln in lines if ln.strip()) if m]
    # Line numbers only when (nearly) every line has one: `0.5 * x` must stay.
    strip_numbers = len(lines) > 0 and len(numbered) >= max(1, int(0.8 * sum(
        1 for ln in lines if ln.strip()
    )))  # fmt: skip
    out = []
    for line in lines:
        if strip_numbers:
            match = _NUMBERED.match(line)
            if match and looks_like_code(line[match.end() :]):
                line = line[match.end() :]
        match = _LIST_MARKER.match(line)
        if match and looks_like_code(line[match.end() :]):
            line = line[match.end() :]
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def unwrap_string(code: str) -> str:
    """The code inside a string literal that wraps a whole snippet (`"def f():\\n    ..."`)."""
    stripped = code.strip()
    if len(stripped) < 2 or stripped[0] not in "\"'" or stripped[-1] != stripped[0]:
        return code
    try:
        value = ast.literal_eval(stripped)
    except (SyntaxError, ValueError):
        try:
            value = json.loads(stripped)
        except ValueError:
            return code
    if isinstance(value, str) and "\n" in value:
        return value
    return code


# "Try:", "Here is the fix:" introduce code; they are not code.
_LABEL = re.compile(r"^\s*[A-Z][\w']*(?:[ \t]+[\w',]+)*:\s*$")


def multiline_literals(text: str) -> list[str]:
    """String literals in prose whose content is several lines (`"def f():\\n    ..."`)."""
    return [
        m.group(0)
        for m in _MULTILINE_LITERAL.finditer(text)
        if unwrap_string(m.group(0)) != m.group(0)
    ]


def looks_like_code(line: str) -> bool:
    if not line.strip() or _PROSE.match(line) or _LABEL.match(line):
        return False
    if line.startswith(("    ", "\t")):
        return True
    return bool(_CODE_WORD.match(line) or _CODE_END.search(line))


# A line of a diff: a header (`--- a/x`, `+++ b/x`, `@@ -3 +3 @@`), a removed or added line, or
# (inside a hunk) a context line.
_DIFF_HEADER = re.compile(r"^(?:---|\+\+\+)(?:[ \t].*)?$|^@@.*@@.*$|^diff[ \t]|^index[ \t]")
_DIFF_CHANGE = re.compile(r"^[-+](?![-+]{2}(?:[ \t]|$))")


def undiff(text: str) -> str:
    """The text with each diff in it (a fenced block, or a run of lines, holding removed `-`
    and added `+` lines, with or without unified headers) as the code it makes: the added
    and context lines, in a fenced block. A diff's lines as they stand are the old and new
    line both; applied, it is only the new."""
    if "\n-" not in text and "\n+" not in text and not text.startswith(("-", "+")):
        return text
    out: list[str] = []
    at = 0
    for match in _FENCE.finditer(text):
        out.append(_undiff_lines(text[at : match.start()]))
        new = _new_side(match.group("body").splitlines())
        out.append(match.group(0) if new is None else f"```\n{new}\n```\n")
        at = match.end()
    out.append(_undiff_lines(text[at:]))
    return "".join(out)


def _undiff_lines(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not (_DIFF_HEADER.match(lines[i]) or _DIFF_CHANGE.match(lines[i])):
            out.append(lines[i])
            i += 1
            continue
        end = i
        # A hunk: headers, changes and the context lines between them (one space in front).
        while end < len(lines) and (
            _DIFF_HEADER.match(lines[end])
            or _DIFF_CHANGE.match(lines[end])
            or (lines[end].startswith(" ") and end + 1 < len(lines) and _in_hunk(lines, end))
        ):
            end += 1
        new = _new_side(lines[i:end])
        if new is None:
            out.extend(lines[i:end])
        else:
            out.extend(["```", new, "```"])
        i = max(end, i + 1)
    return "\n".join(out)


def _in_hunk(lines: Sequence[str], at: int) -> bool:
    # A context line belongs to the hunk when a change follows it before any other line.
    for line in lines[at:]:
        if _DIFF_CHANGE.match(line) or _DIFF_HEADER.match(line):
            return True
        if not line.startswith(" "):
            return False
    return False


def _new_side(lines: Sequence[str]) -> str | None:
    """What a diff's lines make (added and context lines, their mark dropped), or None when
    they are not a diff: one removed and one added line at least, every line a diff's."""
    body = [ln for ln in lines if ln.strip()]
    changes = [ln for ln in body if _DIFF_CHANGE.match(ln)]
    if not any(ln[0] == "-" for ln in changes) or not any(ln[0] == "+" for ln in changes):
        return None
    new: list[str] = []
    for line in body:
        if _DIFF_HEADER.match(line) or line.startswith("-"):
            continue
        if not (line.startswith(("+", " ")) or line.startswith("\t")):
            return None
        new.append(line[1:] if line[0] in "+ " else line)
    text = textwrap.dedent("\n".join(new)).strip("\n")
    return text or None


def code_blocks(reply: str) -> list[str]:
    """Fenced blocks and runs of code-looking lines, markers and string wrapping removed; a
    diff as the code it makes (`undiff`)."""
    reply = undiff(reply)
    blocks: list[str] = []
    for match in _FENCE.finditer(reply):
        body = unwrap_string(strip_markers(match.group("body")))
        if body.strip():
            blocks.append(body.rstrip())
    prose = _SPAN.sub(lambda m: "\0" * len(m.group(0)), _FENCE.sub("\n", reply))
    for literal in multiline_literals(prose):
        blocks.append(textwrap.dedent(unwrap_string(literal)).rstrip())
        prose = prose.replace(literal, "\0")
    run: list[str] = []
    for raw in [*strip_markers(prose).splitlines(), ""]:
        line = raw if "\0" not in raw else ""
        if line.strip() and looks_like_code(line):
            run.append(line)
            continue
        if any(x.strip() for x in run):
            blocks.append(unwrap_string(textwrap.dedent("\n".join(run))).rstrip())
        run = []
        after = _code_after_label(line)
        if after is not None:
            blocks.append(after)
    return blocks


_LABELLED = re.compile(r"^[^:`]*[A-Za-z][^:`]*:[ \t]+(?P<code>\S.*?)[.;]?\s*$")


def _code_after_label(line: str) -> str | None:
    """The code a prose line hands over after a colon: "The line should read: if n % 2 ==
    0: total += n". Only a statement that parses (Python) or ends like one (`;`, `}`)."""
    match = _LABELLED.match(line)
    if match is None:
        return None
    code = match.group("code")
    if not _CODE_WORD.match(code):
        return None
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return code if re.search(r"[;{}]\s*$", code) else None
    return code


def _sentences(text: str) -> Iterator[str]:
    # Split at sentence ends outside spans; spans may hold dots (`xs.sort()`).
    start = 0
    masked = _SPAN.sub(lambda m: "_" * len(m.group(0)), text)
    for match in re.finditer(r"[.!?](?=\s)|\n", masked):
        yield text[start : match.end()]
        start = match.end()
    yield text[start:]


_PAIR_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), swapped)
    for pattern, swapped in (
        # (X first, Y second) unless swapped
        (r"\b(?:replace|change|turn|swap|switch|rewrite|convert|edit|fix|update|make)\b[^`]*"
         r"`(?P<a>[^`]+)`[^`]*?\b(?:with|to|into|for|by|as)\b[^`]*?`(?P<b>[^`]+)`", False),
        (r"\b(?:use|write|try|put|return|call|need|want)\b[^`]*?`(?P<a>[^`]+)`[^`]*?"
         r"\b(?:instead\s+of|rather\s+than|in\s+place\s+of|not)\b[^`]*?`(?P<b>[^`]+)`", True),
        (r"\b(?:instead\s+of|rather\s+than|in\s+place\s+of)\b[^`]*?`(?P<a>[^`]+)`[^`]*?"
         r"`(?P<b>[^`]+)`", False),
        (r"`(?P<a>[^`]+)`[^`]*?\b(?:should\s+(?:be|read|become|say)|must\s+be|needs\s+to\s+be|"
         r"ought\s+to\s+be|has\s+to\s+be|becomes?|is\s+wrong[^`]*?use)\b[^`]*?`(?P<b>[^`]+)`",
         False),
        (r"`(?P<a>[^`]+)`\s*(?:->|→|=>|⟶|to)\s*`(?P<b>[^`]+)`", False),
        (r"\bnot\s+`(?P<b>[^`]+)`\s*,?\s*(?:but|use)\s+`(?P<a>[^`]+)`", True),
    )
)  # fmt: skip
_SINGLE = re.compile(
    r"(?i)\b(?:use|write|try|put|change\s+it\s+to|make\s+it|should\s+(?:be|read|use)|needs?|"
    r"want|replace\s+it\s+with|return|add|insert|it\s+should\s+be)\b"
    # "replace the condition with `X`": what to replace is named in words.
    r"|(?i:\breplace\s+(?:the|this|that|your)\s+[\w' -]{1,40}?\s+with\b)"
)
# What a sentence says a lone expression is: the condition of an `if`/`while`, or what the
# function returns.
_ROLES = (
    ("condition", re.compile(r"(?i)\b(?:condition|check|test|if|while|loop)\b")),
    ("return", re.compile(r"(?i)\b(?:return(?:s|ed)?|result)\b")),
)


def slot_of(sentence: str) -> str | None:
    """The kind of place a sentence puts its expression in, if it names one."""
    sentence = _SPAN.sub("", sentence)  # `sum(n for n in xs if ...)` names no `if`
    for role, pattern in _ROLES:
        if pattern.search(sentence):
            return role
    return None


def prose_edits(reply: str) -> list[Edit]:
    """Edits a reply states in words around inline code spans."""
    prose = _FENCE.sub("\n", reply)
    edits: list[Edit] = []
    for sentence in _sentences(prose):
        spans = [_clean_span(s) for s in _SPAN.findall(sentence)]
        if not spans:
            continue
        found_pair = False
        for pattern, swapped in _PAIR_PATTERNS:
            for match in pattern.finditer(sentence):
                a, b = _clean_span(match.group("a")), _clean_span(match.group("b"))
                old, new = (b, a) if swapped else (a, b)
                if old != new:
                    edits.append(Edit(new=new, old=old, evidence=sentence.strip()))
                    found_pair = True
        line_ref = _LINE_REF.search(sentence)
        if line_ref is not None:
            # "On line 11, write `...`": the last span is what the line should hold.
            edits.append(
                Edit(new=spans[-1], line=int(line_ref.group("n")), evidence=sentence.strip())
            )
        elif not found_pair and _SINGLE.search(sentence):
            for span in spans:
                if _codeish(span):
                    edits.append(Edit(new=span, evidence=sentence.strip(), role=slot_of(sentence)))
        elif not found_pair:
            edits.extend(_unsaid_edits(spans, sentence.strip()))
    return edits


def _unsaid_edits(spans: Sequence[str], evidence: str) -> Iterator[Edit]:
    """What spans suggest without a word saying so ("The correct line is `X`", "Before: `A`
    After: `B`", a table's cells, "It's not `A`, it's `B`"): a whole statement in place of the
    learner's line most like it (`role` "line"), and of two spans of a few tokens each, the
    second in place of the first (`role` "alike"). Applied only where the learner's code is
    alike (`apply_edit`), so a generic example or a lone operator named builds nothing."""
    for span in spans:
        if _STATEMENT.match(span) or (_CODE_WORD.match(span) and len(_tokens(span)) >= 3):
            yield Edit(new=span, evidence=evidence, role="line")
    for a, b in zip(spans, spans[1:], strict=False):
        if a != b and min(len(_tokens(a)), len(_tokens(b))) >= 2:
            yield Edit(new=b, old=a, evidence=evidence, role="alike")


def _clean_span(span: str) -> str:
    return unwrap_string(span.strip())


def _codeish(span: str) -> bool:
    """A span that could be code to paste, not a bare word or value named in passing."""
    return bool(re.search(r"[()\[\]=<>+\-*/%:.,!&|]", span)) or len(span.split()) > 1


def spans_outside_attempt(reply: str, attempt: str) -> list[str]:
    """Inline code spans the learner's code does not already contain (costly to ignore)."""
    flat = _flat(attempt)
    return [s for s in _SPAN.findall(_FENCE.sub("\n", reply)) if _flat(s) not in flat]


def has_code(reply: str) -> bool:
    """Whether the reply holds anything the guard must read: a fence, a span, a code line, or
    a change said in words ("change the minus on line 3 to a plus")."""
    return "`" in reply or "~~~" in reply or bool(code_blocks(reply)) or verbal.mentions_edit(reply)


def shown_code(reply: str) -> str:
    """What of a reply the guard adds up later, and nothing else: its code blocks, fenced, and
    the sentences holding an inline span (the prose edits), read as the learner read it; ""
    when it shows no code. Added up with later replies it counts as the whole reply does."""
    # Decoded as the guard read it, so code handed over encoded adds up as code does.
    reply = encodings.revealed(visible(reply), encodings.vocabulary())
    if not has_code(reply):
        return ""
    parts = [f"```\n{block}\n```" for block in code_blocks(reply)]
    parts.extend(
        sentence.strip()
        for sentence in _sentences(_FENCE.sub("\n", reply))
        if _SPAN.search(sentence)
    )
    return "\n\n".join(parts)


# -- applying it ----------------------------------------------------------------------------------


def _shape(code: str) -> str:
    """The program up to spacing inside lines (indentation counts: it is Python's syntax)."""
    return "\n".join(
        _indent(line) + re.sub(r"\s+", "", line) for line in code.splitlines() if line.strip()
    )


def _flat(code: str) -> str:
    return re.sub(r"\s+", "", code)


def _tokens(text: str) -> list[str]:
    return [m.group(0) for m in _TOKEN.finditer(text)]


def _similarity(a: str, b: str) -> float:
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return 0.0
    return SequenceMatcher(None, ta, tb, autojunk=False).ratio()


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(lines: Sequence[str], source_indent: str, target_indent: str) -> list[str]:
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
            continue
        indent = _indent(line)
        if indent.startswith(source_indent):
            out.append(target_indent + line[len(source_indent) :])
        else:
            out.append(target_indent + line.lstrip())
    return out


def _shift(line: str, by: int) -> str:
    if not line.strip():
        return ""
    return " " * max(0, len(_indent(line)) + by) + line.lstrip()


def _python_defs(code: str) -> dict[str, tuple[int, int]] | None:
    """Top-level (and class-level) function and class spans by name: (first line, end line)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    spans: dict[str, tuple[int, int]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans[node.name] = (first - 1, node.end_lineno or node.lineno)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        start = min([item.lineno, *(d.lineno for d in item.decorator_list)])
                        spans.setdefault(item.name, (start - 1, item.end_lineno or item.lineno))
    return spans


_PY_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")
_JS_DEF = re.compile(
    r"^(?P<indent>[ \t]*)(?:export\s+)?(?:"
    r"(?:async\s+)?function\s*\*?\s*(?P<f>[\w$]+)\s*\("
    r"|class\s+(?P<c>[\w$]+)"
    r"|(?:const|let|var)\s+(?P<v>[\w$]+)\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|[\w$]+\s*=>)"
    r"|(?:static\s+|async\s+|get\s+|set\s+)*(?P<m>[\w$]+)\s*\([^)]*\)\s*\{)"
)


def _regex_defs(code: str, language: str) -> dict[str, tuple[int, int]]:
    """Function spans found by indentation (Python) or braces (JavaScript)."""
    lines = code.splitlines()
    spans: dict[str, tuple[int, int]] = {}
    for i, line in enumerate(lines):
        if language == "python":
            match = _PY_DEF.match(line)
            if not match:
                continue
            name = match.group("name")
            end = i + 1
            base = len(match.group("indent"))
            while end < len(lines) and (not lines[end].strip() or len(_indent(lines[end])) > base):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1
        else:
            match = _JS_DEF.match(line)
            if not match:
                continue
            name = match.group("f") or match.group("c") or match.group("v") or match.group("m")
            if name in {"if", "for", "while", "switch", "catch", "function", "return"}:
                continue
            end = _brace_end(lines, i)
        spans.setdefault(name, (i, end))
    return spans


def _brace_end(lines: Sequence[str], start: int) -> int:
    depth = 0
    seen = False
    for j in range(start, len(lines)):
        code = re.sub(
            r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`(?:\\.|[^`\\])*`|//.*", "", lines[j]
        )
        for ch in code:
            if ch in "{(":
                depth += 1
                seen = seen or ch == "{"
            elif ch in "})":
                depth -= 1
        if seen and depth <= 0:
            return j + 1
        if not seen and j > start and depth <= 0 and code.rstrip().endswith(";"):
            return j + 1
    return len(lines)


def _defs(code: str, language: str) -> dict[str, tuple[int, int]]:
    if language == "python":
        spans = _python_defs(code)
        if spans is not None:
            return spans
    return _regex_defs(code, language)


def replace_functions(attempt: str, snippet: str, language: str) -> str | None:
    """The attempt with each function the snippet defines put in place of its namesake."""
    snippet = textwrap.dedent(snippet)
    snippet_lines = snippet.splitlines()
    # A lone header line (`def f(items, k):`) is a changed line, not a whole function.
    theirs = {
        name: (start, end)
        for name, (start, end) in _defs(snippet, language).items()
        if any(line.strip() for line in snippet_lines[start + 1 : end])
    }
    if not theirs:
        return None
    ours = _defs(attempt, language)
    lines = attempt.splitlines()
    replaced = False
    # Bottom-up so earlier spans keep their line numbers; outer definitions only.
    chosen = _outermost(theirs)
    for name, (start, end) in sorted(
        ((n, ours[n]) for n in chosen if n in ours), key=lambda item: -item[1][0]
    ):
        their_start, their_end = theirs[name]
        body = snippet_lines[their_start:their_end]
        target = _indent(lines[start]) if start < len(lines) else ""
        lines[start:end] = _reindent(body, _indent(snippet_lines[their_start]), target)
        replaced = True
    missing = [n for n in chosen if n not in ours]
    if not replaced:
        return None
    for name in missing:
        # A helper the fix needs goes at the top, before whatever calls it.
        start, end = theirs[name]
        lines[0:0] = [*_reindent(snippet_lines[start:end], _indent(snippet_lines[start]), ""), ""]
    header = _imports(snippet, language, attempt)
    return "\n".join([*header, *lines]) + "\n"


def _outermost(spans: dict[str, tuple[int, int]]) -> list[str]:
    names = []
    for name, (start, end) in spans.items():
        if not any(s <= start and end <= e and (s, e) != (start, end) for s, e in spans.values()):
            names.append(name)
    return names


def _imports(snippet: str, language: str, attempt: str) -> list[str]:
    pattern = r"^(?:import|from)\s" if language == "python" else r"^(?:import\s|const .*require\()"
    return [
        line
        for line in snippet.splitlines()
        if re.match(pattern, line.strip()) and line.strip() not in attempt
    ]


def apply_lines(attempt: str, snippet: str) -> list[str]:
    """The attempt with the snippet's lines in place of the most alike lines (best first).

    A local alignment of the snippet against the attempt, line by line: the aligned region is
    replaced, re-indented to where it lands. Where no line is alike, the snippet is inserted
    after the last line of the block it most likely belongs to.
    """
    a_lines = attempt.splitlines()
    s_lines = [ln for ln in textwrap.dedent(snippet).splitlines()]
    while s_lines and not s_lines[-1].strip():
        s_lines.pop()
    while s_lines and not s_lines[0].strip():
        s_lines.pop(0)
    if not s_lines or not a_lines:
        return []
    region = _align(a_lines, s_lines)
    results: list[str] = []
    if region is not None:
        (a_start, a_end), (s_anchor, a_anchor) = region
        regions = [(a_start, a_end)]
        # Lines at the region's edges that are not really alike are kept, the snippet's
        # lines there being new ones (an `if` added around a line, not replacing the loop).
        alike = [
            i
            for i in range(a_start, a_end)
            if max((_similarity(a_lines[i].strip(), t.strip()) for t in s_lines), default=0)
            >= _SIMILAR
        ]
        if alike and (alike[0], alike[-1] + 1) != (a_start, a_end):
            regions.append((alike[0], alike[-1] + 1))
        for start, end in regions:
            # The most alike pair sets the indentation; when the fix re-nests that very line
            # (a new `if` around it), the region's first line is the better guide.
            for source, target in (
                (s_lines[s_anchor], a_lines[a_anchor]),
                (s_lines[0], a_lines[start]),
            ):
                shift = len(_indent(target)) - len(_indent(source))
                new = [_shift(line, shift) for line in s_lines]
                results.append("\n".join([*a_lines[:start], *new, *a_lines[end:]]) + "\n")
        if len([ln for ln in s_lines if ln.strip()]) == 1:
            # One line alike to several (two `__init__` headers): the next best places too.
            line = s_lines[0].strip()
            best = _similarity(a_lines[a_start].strip(), line)
            others = sorted(
                (
                    (-_similarity(text.strip(), line), i)
                    for i, text in enumerate(a_lines)
                    if i != a_start and text.strip()
                ),
            )
            for negative, i in others[:2]:
                if -negative >= max(_SIMILAR, best - 0.1):
                    moved = [*a_lines]
                    moved[i] = _indent(a_lines[i]) + line
                    results.append("\n".join(moved) + "\n")
        return results
    # Nothing alike. A lone statement is tried first in the place of the learner's statement of
    # the same kind (`return sum(...)` for `return total`, `total = ...` for `total = 0`) or of
    # a line it holds; then it is inserted at the end of each function body (the last one
    # first), re-indented to it.
    if len([ln for ln in s_lines if ln.strip()]) == 1:
        head, flat = _head(s_lines[0]), _flat(s_lines[0])
        for i, text in enumerate(a_lines):
            # Or it holds a whole line of theirs (`if n % 2 == 0: total += n` wraps `total += n`).
            wraps = len(_tokens(text)) >= 3 and _flat(text) in flat
            if wraps or (head is not None and _head(text) == head):
                results.append(
                    "\n".join([*a_lines[:i], _indent(text) + s_lines[0].strip(), *a_lines[i + 1 :]])
                    + "\n"
                )
    inserted = 0
    for start, end in sorted(_regex_defs(attempt, _guess_language(attempt)).values(), reverse=True):
        body = [ln for ln in a_lines[start + 1 : end] if ln.strip()]
        if not body:
            continue
        target = _indent(body[-1]) if not body[-1].strip().startswith("}") else _indent(
            body[0]
        )  # fmt: skip
        at = end
        if a_lines[end - 1].strip().startswith("}"):
            at = end - 1
        new = _reindent(s_lines, _indent(s_lines[0]), target)
        results.append("\n".join([*a_lines[:at], *new, *a_lines[at:]]) + "\n")
        inserted += 1
        if inserted >= 2:
            break
    return results


_HEAD = re.compile(
    r"\s*(?:(?P<kw>return|yield|raise|throw)\b"
    r"|(?:(?:let|const|var)\s+)?(?P<target>[\w.$\[\]'\"]+)\s*(?:[-+*/%]|//|\*\*)?=(?!=))"
)


def _head(line: str) -> str | None:
    """What a statement is about: its keyword (`return`), or the name it assigns to."""
    match = _HEAD.match(line)
    if match is None:
        return None
    return match.group("kw") or match.group("target")


def _guess_language(code: str) -> str:
    return "javascript" if re.search(r"[{};]\s*$", code, re.MULTILINE) else "python"


def _align(
    a_lines: Sequence[str], s_lines: Sequence[str]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Smith-Waterman over lines: the attempt's region best matching the snippet.

    Returns ((region start, region end) in the attempt, (snippet line, attempt line) of the
    most alike pair, used to re-indent), or None when no line pair is alike."""
    n, m = len(a_lines), len(s_lines)
    a_norm = [ln.strip() for ln in a_lines]
    s_norm = [ln.strip() for ln in s_lines]
    sim = [[0.0] * m for _ in range(n)]
    best_pair: tuple[float, int, int] = (0.0, -1, -1)
    for i in range(n):
        if not a_norm[i]:
            continue
        for j in range(m):
            if not s_norm[j]:
                continue
            value = 1.0 if a_norm[i] == s_norm[j] else _similarity(a_norm[i], s_norm[j])
            sim[i][j] = value
            if value > best_pair[0]:
                best_pair = (value, i, j)
    if best_pair[0] < _SIMILAR:
        return None
    gap = -0.35
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    back: dict[tuple[int, int], tuple[int, int]] = {}
    top = (0.0, 0, 0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            pair = sim[i - 1][j - 1]
            match = score[i - 1][j - 1] + (
                pair - _SIMILAR + 0.25 if a_norm[i - 1] or s_norm[j - 1] else 0.1
            )
            options = [
                (0.0, (-1, -1)),
                (match, (i - 1, j - 1)),
                (score[i - 1][j] + (gap if a_norm[i - 1] else 0.0), (i - 1, j)),
                (score[i][j - 1] + (gap if s_norm[j - 1] else 0.0), (i, j - 1)),
            ]
            value, origin = max(options, key=lambda o: o[0])
            score[i][j] = value
            if value > 0:
                back[(i, j)] = origin
            if value > top[0]:
                top = (value, i, j)
    if top[0] <= 0:
        _, i, j = best_pair
        return ((i, i + 1), (j, i))
    _, i, j = top
    end_a, end_s = i, j
    while (i, j) in back and back[(i, j)] != (-1, -1) and score[i][j] > 0:
        i, j = back[(i, j)]
    start_a, start_s = i, j
    anchor = max(
        ((sim[x][y], y, x) for x in range(start_a, end_a) for y in range(start_s, end_s)),
        default=(best_pair[0], best_pair[2], best_pair[1]),
    )
    return ((start_a, end_a), (anchor[1], anchor[2]))


def substitute_span(attempt: str, span: str, *, line: int | None = None) -> list[str]:
    """The attempt with `span` in place of the most alike run of tokens (on `line` if given)."""
    lines = attempt.splitlines(keepends=True)
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text))
    if line is not None:
        if not 1 <= line <= len(lines):
            return []
        low, high = offsets[line - 1], offsets[line]
    else:
        low, high = 0, len(attempt)
    span_tokens = _tokens(span)
    if not span_tokens:
        return []
    found = [
        (m.start(), m.end(), m.group(0))
        for m in _TOKEN.finditer(attempt)
        if low <= m.start() < high
    ]
    scored: list[tuple[float, int, int]] = []
    length = len(span_tokens)
    for size in {max(1, length - 1), length, length + 1}:
        for k in range(len(found) - size + 1):
            window = found[k : k + size]
            if attempt.count("\n", window[0][0], window[-1][1]):
                continue
            words = [w for _, _, w in window]
            if words == span_tokens:
                continue
            ratio = SequenceMatcher(None, words, span_tokens, autojunk=False).ratio()
            if length == 1 and size == 1 and _kind(words[0]) == _kind(span_tokens[0]):
                # A lone token (a number, an operator) replaces a token of its own kind.
                ratio = max(ratio, _SPAN_SIMILAR)
            if ratio >= _SPAN_SIMILAR:
                scored.append((ratio, window[0][0], window[-1][1]))
    scored.sort(key=lambda s: (-s[0], s[1]))
    results = []
    for _, start, end in scored[:3]:
        results.append(attempt[:start] + span + attempt[end:])
    return results


def _kind(token: str) -> str:
    if token[0].isdigit():
        return "number"
    if token[0] in "\"'`":
        return "string"
    if token[0].isalpha() or token[0] in "_$":
        return "name"
    return "operator"


def apply_edit(attempt: str, edit: Edit) -> list[str]:
    """Programs the edit can mean, most literal first."""
    if edit.role in ("line", "alike"):
        return _apply_unsaid(attempt, edit)
    results: list[str] = []
    lines = attempt.splitlines()
    if edit.line is not None and 1 <= edit.line <= len(lines):
        target = lines[edit.line - 1]
        if _flat(edit.new) in _flat(target):
            return []  # the line quoted as it is
        if _similarity(target.strip(), edit.new) >= _SIMILAR - 0.15 or _CODE_WORD.match(edit.new):
            changed = [*lines]
            changed[edit.line - 1] = _indent(target) + edit.new.strip()
            results.append("\n".join(changed) + "\n")
        results.extend(substitute_span(attempt, edit.new, line=edit.line))
    if edit.old is not None:
        old = edit.old
        if old in attempt:
            results.append(attempt.replace(old, edit.new))
            if attempt.count(old) > 1:
                # Only one of the places may be meant: each of the first few on its own.
                at = attempt.find(old)
                for _ in range(3):
                    if at < 0:
                        break
                    results.append(attempt[:at] + edit.new + attempt[at + len(old) :])
                    at = attempt.find(old, at + 1)
        else:
            pattern = r"\s*".join(re.escape(t) for t in _tokens(old))
            if pattern:
                swapped = re.sub(pattern, lambda _m: edit.new, attempt)
                if swapped != attempt:
                    results.append(swapped)
    if not results:
        if _flat(edit.new) in _flat(attempt):
            return []  # a quote of the learner's own code, not an edit
        dropped = drop_in(attempt, edit.new, edit.role)
        if edit.role is not None:
            results.extend(dropped)  # the place named comes first
        results.extend(substitute_span(attempt, edit.new))
        if "\n" not in edit.new.strip():
            results.extend(apply_lines(attempt, edit.new)[:1])
        if edit.role is None:
            results.extend(dropped)
    return results


def _apply_unsaid(attempt: str, edit: Edit) -> list[str]:
    """An edit no word states (`_unsaid_edits`): only an edit of the learner's code, never a
    quote of it; a statement in place of a line alike, the second span in place of the first
    when the first is theirs and the second alike to it."""
    if _flat(edit.new) in _flat(attempt):
        return []
    if edit.role == "line":
        best = max(
            (_similarity(line.strip(), edit.new.strip()) for line in attempt.splitlines()),
            default=0.0,
        )
        return apply_lines(attempt, edit.new)[:2] if best >= _SIMILAR else []
    old = edit.old or ""
    if _flat(old) not in _flat(attempt) or _similarity(old, edit.new) < _SPAN_SIMILAR:
        return []
    return apply_edit(attempt, Edit(new=edit.new, old=old, evidence=edit.evidence))


_RETURN_SLOT = re.compile(r"^(?P<head>\s*return\s+)(?P<expr>.*?)(?P<tail>;?\s*)$")
_CONDITION_SLOT = re.compile(
    r"^(?P<head>\s*(?:elif|if|while)\s+)(?P<expr>.+?)(?P<tail>\s*:\s*(?:#.*)?)$"
    r"|^(?P<jhead>\s*(?:\}\s*)?(?:else\s+)?(?:if|while)\s*\()(?P<jexpr>.+)(?P<jtail>\)\s*\{?\s*)$"
)
_STATEMENT = re.compile(
    r"^\s*(?:return|if|elif|else|for|while|def|function|let|const|var|import|from)\b"
    r"|^[\w.\[\]]+\s*(?:[-+*/%]|//|\*\*)?=(?!=)"
)
_BOOLEAN = re.compile(r"==|!=|<|>|\bnot\b|\band\b|\bor\b|&&|\|\||!|\bin\b|\bis\b")


def drop_in(attempt: str, expression: str, role: str | None) -> list[str]:
    """The attempt with a lone expression in the place a sentence names for it (`role`), or,
    when it names none, where its kind goes: a condition for a comparison, else the value
    returned. Each such place on its own, the first few."""
    expression = expression.strip().rstrip(";")
    if not expression or "\n" in expression or _STATEMENT.match(expression):
        return []
    if role is None:
        role = "condition" if _BOOLEAN.search(expression) else "return"
    pattern = _CONDITION_SLOT if role == "condition" else _RETURN_SLOT
    results = []
    lines = attempt.splitlines()
    for i, line in enumerate(lines):
        match = pattern.match(line)
        if match is None:
            continue
        parts = match.groupdict()
        head, expr, tail = (parts[k] or parts.get("j" + k) or "" for k in ("head", "expr", "tail"))
        if _flat(expr) == _flat(expression):
            continue
        changed = [*lines]
        changed[i] = head + expression + tail
        results.append("\n".join(changed) + "\n")
        if len(results) >= 3:
            break
    return results


def candidates(
    reply: str,
    attempt: str,
    language: str,
    *,
    cap: int = DEFAULT_CAP,
    earlier: Sequence[str] = (),
) -> list[Candidate]:
    """Up to `cap` distinct programs the reply (with `earlier` replies) turns the attempt into."""
    lang = normalize_language(language)
    found: list[Candidate] = []
    seen = {_shape(attempt)}

    def add(programs: Iterable[str], form: Form, evidence: str) -> None:
        for program in programs:
            key = _shape(program)
            if key in seen:
                continue
            seen.add(key)
            found.append(Candidate(program, form, evidence))

    # Code written in prose without markup is read as spans are (`encodings.bare_code`).
    edits = prose_edits(bare_spans(reply, attempt))
    blocks = code_blocks(reply)
    combined = attempt
    for block in blocks:
        whole = replace_functions(attempt, block, lang)
        if whole is not None:
            add([whole], "function", block)
            combined = replace_functions(combined, block, lang) or combined
            continue
        lined = apply_lines(attempt, block)
        add(lined, "lines", block)
        if lined:
            combined = (apply_lines(combined, block) or [combined])[0]
    for edit in edits:
        applied = apply_edit(attempt, edit)
        add(applied, "span" if edit.old is None and edit.line is None else "prose", edit.evidence)
        if applied:
            combined = (apply_edit(combined, edit) or [combined])[0]
    if len(blocks) + len(edits) > 1:
        add([combined], "combined", reply)
    for program, evidence in verbal.programs(reply, attempt, lang):
        add([program], "words", evidence)
    if earlier:
        # A fix handed out over several turns adds up: this reply on top of the earlier ones,
        # when it changes what they made of the attempt (what they made alone is theirs, not
        # this reply's: they were let through, or shown while the tutor was open).
        before = _stack(attempt, earlier, lang, attempt)
        stacked = _stack(before, [reply], lang, attempt)
        if _shape(stacked) != _shape(before):
            add([stacked], "combined", reply)
    return found[:cap]


def _stack(attempt: str, texts: Sequence[str], lang: str, original: str) -> str:
    """The attempt with every block and prose edit of `texts` applied in turn (an edit no
    word states that quotes the learner's `original` code is a quote, not an edit)."""
    stacked = attempt
    for text in texts:
        for block in code_blocks(text):
            stacked = (
                replace_functions(stacked, block, lang)
                or (apply_lines(stacked, block) or [stacked])[0]
            )
        for edit in prose_edits(bare_spans(text, original)):
            if edit.role in ("line", "alike") and _flat(edit.new) in _flat(original):
                continue
            stacked = (apply_edit(stacked, edit) or [stacked])[0]
    return stacked


def bare_spans(reply: str, attempt: str) -> str:
    """The reply with code written plainly in its prose (outside fenced blocks) in spans."""
    known = encodings.vocabulary(attempt)
    out: list[str] = []
    at = 0
    for match in _FENCE.finditer(reply):
        out += [encodings.bare_code(reply[at : match.start()], known), match.group(0)]
        at = match.end()
    out.append(encodings.bare_code(reply[at:], known))
    return "".join(out)
