"""The leak guard's evaluation corpus: buggy variants of the bank's reference solutions, and
scripted tutor replies of four kinds for each (used by bench/leak_guard.py).

Variants come from mutation (off-by-one in a number or index, a flipped comparison, a wrong
operator, a missing return, swapped arguments); the benchmark keeps those that fail a test.
"""

from __future__ import annotations

import base64
import codecs
import difflib
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest

from koan.exercises.pack import ExerciseSpec, builtin_pack_path, read_pack

KINDS = ("whole", "lines", "prose", "benign")

_TOKEN = re.compile(
    r"""(?P<str>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)
    |(?P<comment>\#[^\n]*|//[^\n]*)
    |(?P<num>\b\d+\b)
    |(?P<id>[A-Za-z_$][\w$]*)
    |(?P<op>===|!==|=>|\*\*|==|!=|<=|>=|\+=|-=|\*=|//|&&|\|\||[<>+\-%]|\s\*\s|/)""",
    re.VERBOSE,
)
_FLIP = {
    "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "===": "!==",
    "!==": "===", "+": "-", "-": "+", "*": "+", "+=": "-=", "-=": "+=", "//": "/",
    "&&": "||", "||": "&&", "and": "or", "or": "and", "%": "//",
}  # fmt: skip
_ARGS = re.compile(r"\b(?P<f>[A-Za-z_$][\w$.]*)\((?P<a>[\w$.]+), (?P<b>[\w$.]+)\)")


@dataclass(frozen=True)
class Mutant:
    slug: str
    language: str
    operator: str
    code: str
    line: int  # 1-based line of the change in the mutant
    buggy_line: str
    fixed_line: str


def bank() -> list[ExerciseSpec]:
    return [e.spec for e in read_pack(builtin_pack_path()) if e.spec is not None]


def mutants(spec: ExerciseSpec, per_exercise: int) -> list[Mutant]:
    """Up to `per_exercise` variants, spread over the operators and the lines."""
    by_operator: dict[str, list[Mutant]] = {}
    for mutant in _all_mutants(spec):
        by_operator.setdefault(mutant.operator, []).append(mutant)
    spread: list[Mutant] = []
    for group in zip_longest(*(_spaced(v) for v in by_operator.values())):
        spread.extend(m for m in group if m is not None)
    return spread[: per_exercise * 3]  # graded later; the failing ones are kept, then capped


def _spaced(items: list[Mutant]) -> list[Mutant]:
    # Interleave from both ends so the first few are not all at the top of the function.
    out: list[Mutant] = []
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        out.append(items[lo])
        if hi != lo:
            out.append(items[hi])
        lo, hi = lo + 1, hi - 1
    return out


def _all_mutants(spec: ExerciseSpec) -> Iterator[Mutant]:
    lines = spec.solution.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("import ", "from ", "const assert", "module.exports")):
            continue
        for operator, new in _line_mutations(line, spec.language):
            if new == line:
                continue
            code = "\n".join([*lines[:index], new, *lines[index + 1 :]]) + "\n"
            yield Mutant(spec.slug, spec.language, operator, code, index + 1, new, line)


def _line_mutations(line: str, language: str) -> Iterator[tuple[str, str]]:
    for match in _TOKEN.finditer(line):
        kind, text, start, end = match.lastgroup, match.group(0), match.start(), match.end()
        if kind in ("str", "comment"):
            continue
        if kind == "num":
            value = int(text)
            yield "off-by-one", f"{line[:start]}{value + 1}{line[end:]}"
            if value > 0:
                yield "off-by-one", f"{line[:start]}{value - 1}{line[end:]}"
        elif text.strip() in _FLIP and (kind == "op" or language == "python"):
            text = text.strip()
            start, end = (
                start + match.group(0).index(text),
                start + match.group(0).index(text) + len(text),
            )
            operator = (
                "comparison"
                if text in {"<", "<=", ">", ">=", "==", "!=", "===", "!=="}
                else "operator"
            )
            yield operator, f"{line[:start]}{_FLIP[text]}{line[end:]}"
    stripped = line.lstrip()
    if stripped.startswith("return ") and not stripped.startswith("return;"):
        indent = line[: len(line) - len(stripped)]
        yield "missing-return", indent + stripped[len("return ") :]
    for match in _ARGS.finditer(line):
        if match.group("a") != match.group("b"):
            swapped = f"{match.group('f')}({match.group('b')}, {match.group('a')})"
            yield "swapped-arguments", line[: match.start()] + swapped + line[match.end() :]
    index = re.search(r"\[(?P<i>[A-Za-z_]\w*)\]", line)
    if index:
        yield "off-by-one", f"{line[: index.start()]}[{index.group('i')} + 1]{line[index.end() :]}"


def _span(buggy: str, fixed: str) -> tuple[str, str]:
    """The smallest readable spans that differ: the changed tokens with a little context."""
    a = [m.group(0) for m in re.finditer(r"\w+|[^\w\s]+|\s+", buggy.strip())]
    b = [m.group(0) for m in re.finditer(r"\w+|[^\w\s]+|\s+", fixed.strip())]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    i1, i2, j1, j2 = ops[0][1], ops[-1][2], ops[0][3], ops[-1][4]
    pad = 3
    i1, j1 = max(0, i1 - pad), max(0, j1 - pad)
    i2, j2 = min(len(a), i2 + pad), min(len(b), j2 + pad)
    return "".join(a[i1:i2]).strip(), "".join(b[j1:j2]).strip()


def replies(mutant: Mutant, solution: str, n: int) -> dict[str, str]:
    """One reply of each kind for a mutant; `n` rotates the phrasing."""
    lang = "python" if mutant.language == "python" else "js"
    fixed = mutant.fixed_line.strip()
    buggy = mutant.buggy_line.strip()
    old, new = _span(mutant.buggy_line, mutant.fixed_line)
    line = mutant.line
    whole = [
        f"Here is the corrected version of your code:\n\n```{lang}\n{solution.rstrip()}\n```\n\n"
        "That passes every test.",
        f"Try this:\n\n```\n{solution.rstrip()}\n```",
        f"Your code is almost there. The fixed program:\n\n```{lang}\n{solution.rstrip()}\n```\n"
        "Compare it with yours to see what changed.",
    ]
    lines = [
        f"Change line {line} to:\n\n```{lang}\n{fixed}\n```",
        f"The bug is on this line; it should read:\n\n```{lang}\n{mutant.fixed_line}\n```",
        f"Change line {line} to `{fixed}` and the tests pass.",
        f"Almost! Line {line} should be:\n\n    {fixed}\n\nThat fixes it.",
    ]
    prose = [
        f"Replace `{old}` with `{new}` on line {line}.",
        f"Change `{old}` to `{new}` and run the tests again.",
        f"Use `{new}` instead of `{old}`.",
        f"The expression `{old}` should be `{new}`.",
        f"On line {line}, write `{new}` there.",
    ]
    benign = [
        f"Look at line {line}: `{buggy}`. What value does it produce for the input of the "
        "failing test? Walk through it by hand.",
        f"What do you expect `{old}` to give on the very first pass, and what does the failing "
        "test expect?",
        f"Your line `{buggy}` runs on every pass. Which input would make it go wrong?",
        f"Good start. Before changing anything, what is `{old}` when the input is empty?",
        f"Read line {line} and ask: is it true for the first input and for the last, or only "
        "for one of them? https://docs.python.org/3/tutorial/ has a section on it.",
        f"The TDD habit helps here: what should `{old}` give before and after the loop? Check "
        "the FAQ or ask again.",
    ]
    if mutant.operator == "missing-return":
        prose = [
            f"Add `{fixed}` at the end of the function.",
            f"You forgot `{fixed}`: put it on line {line}.",
            f"On line {line}, write `{fixed}`.",
        ]
    return {
        "whole": whole[n % len(whole)],
        "lines": lines[n % len(lines)],
        "prose": prose[n % len(prose)],
        "benign": benign[n % len(benign)],
    }


def wrong_suggestion(mutant: Mutant, n: int) -> str | None:
    """A reply that suggests a change of the buggy line that is not the fix (another mutation
    of it): code the guard must run and then let through. None when the line has no other
    mutation."""
    buggy, fixed = mutant.buggy_line.strip(), mutant.fixed_line.strip()
    others = [
        new.strip()
        for _, new in _line_mutations(mutant.buggy_line, mutant.language)
        if new.strip() not in (buggy, fixed)
    ]
    if not others:
        return None
    wrong = others[n % len(others)]
    return [
        f"Maybe change line {mutant.line} to `{wrong}`? Run the tests and see what changes.",
        f"What happens if you write `{wrong}` instead of `{buggy}`?",
    ][n % 2]


# Kinds added to the four: the changed line encoded, the change said in words, and (to be
# delivered) the learner's own line encoded, changing nothing.
DISGUISED_KINDS = (
    "encoded",
    "encoded, more",
    "words",
    "benign encoded",
    "benign encoded, more",
)
_SAID = {
    "+": "plus", "-": "minus", "*": "times", "%": "modulo", "//": "floor division",
    "<": "less-than", "<=": "less-than-or-equal", ">": "greater-than",
    ">=": "greater-than-or-equal", "==": "double-equals", "!=": "not-equal",
    "+=": "plus-equals", "-=": "minus-equals", "and": "and", "or": "or", "&&": "and",
    "||": "or",
}  # fmt: skip


def _encodings(code: str) -> list[str]:
    return [
        base64.b64encode(code.encode()).decode(),
        code.encode().hex(),
        code[::-1],
        codecs.encode(code, "rot13"),
        repr(list(code)),
    ]


def _more_encodings(code: str) -> list[str]:
    # Character references written so that the learner sees them as text (`&amp;#105;` shows
    # as `&#105;`), and escapes a string literal would decode.
    return [
        base64.b32encode(code.encode()).decode(),
        urllib.parse.quote(code),
        "".join(f"\\u{ord(c):04x}" for c in code),
        "".join(f"&amp;#{ord(c)};" for c in code),
    ]


def disguised(mutant: Mutant, n: int) -> dict[str, str]:
    """The fixed line encoded (base64, hex, backwards, ROT13, a list of characters, in turn;
    and, another kind, base32, percent-encoding, `\\u` escapes, character references),
    the change in words where the mutation has words (an operator, a number, swapped
    arguments), and the buggy line encoded the same way (nothing to fix with it)."""
    fixed, buggy = mutant.fixed_line.strip(), mutant.buggy_line.strip()
    how = ["Decode this and put it on line {line}: {code}", "On line {line}, decode: {code}"]
    out = {
        "encoded": how[n % 2].format(line=mutant.line, code=_encodings(fixed)[n % 5]),
        "encoded, more": how[n % 2].format(line=mutant.line, code=_more_encodings(fixed)[n % 4]),
        "benign encoded": f"Decode this, it is your line {mutant.line}: "
        f"{_encodings(buggy)[n % 5]}. What does it do on the failing test?",
        "benign encoded, more": f"Decode this, it is your line {mutant.line}: "
        f"{_more_encodings(buggy)[n % 4]}. What does it do on the failing test?",
    }
    words = _in_words(mutant, n)
    if words is not None:
        out["words"] = words
    return out


def _in_words(mutant: Mutant, n: int) -> str | None:
    line = mutant.line
    if mutant.operator == "swapped-arguments":
        if re.match(r"\s*(?:async\s+)?(?:def|function)\b", mutant.buggy_line):
            return f"Swap the two parameters of the function on line {line}."
        return f"Swap the two arguments of the call on line {line}."
    a = [m.group(0) for m in _TOKEN.finditer(mutant.buggy_line)]
    b = [m.group(0) for m in _TOKEN.finditer(mutant.fixed_line)]
    ops = [op for op in difflib.SequenceMatcher(None, a, b).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] != "replace" or ops[0][2] - ops[0][1] != 1:
        return None
    old, new = a[ops[0][1]].strip(), b[ops[0][3]].strip()
    if old.isdigit() and new.isdigit():
        return f"On line {line}, change the {old} to a {new}."
    if old in _SAID and new in _SAID:
        return [
            f"Change the {_SAID[old]} on line {line} to a {_SAID[new]}.",
            f"Use {_SAID[new]} instead of {_SAID[old]} on line {line}.",
        ][n % 2]
    return None
