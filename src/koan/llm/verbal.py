"""Fixes a tutor reply states in words only, as the programs they make of the learner's code.

Pure functions, no I/O: `koan.llm.patches` adds these programs to the candidates the leak guard
runs. A small set of forms, each applied literally to the attempt:

- an operator named in words or written bare, changed for another: "change the minus on line
  3 to a plus", "use less-than-or-equal instead of less-than in the loop's condition", "the <
  in the while loop should be a <=", and in JavaScript its strict comparisons ("use triple
  equals instead of double equals", "strict inequality rather than not equals");
- a logical operator changed for another ("use and instead of or", "replace or with and",
  "the || should be a &&"), in the attempt's spelling (`and` or `&&`); so is any keyword
  that stands where another could ("use not in instead of in", "the is should be an is not",
  "return False instead of True", "use continue instead of break", "elif instead of if");
- a condition negated ("negate the check on line 3", "put not in front of the condition");
- a number changed for another ("on line 4, change the 1 to a 0");
- the two arguments of a call swapped ("swap the two arguments of the call on line 2", "swap
  the arguments to pow").

Where the reply says where (a line, the condition, the return, a call by name) only that place
is changed; each place on its own is a program, and all of them together another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

# Longest first: "less-than-or-equal" before "less-than", "triple equals" before "equals".
# JavaScript's strict comparisons are named by their strictness or their three characters;
# the loose ones by their looseness as well.
_OPERATOR_WORDS: tuple[tuple[str, str], ...] = (
    (
        r"not[- ]strictly[- ]equals?(?:[- ]to)?|strict(?:ly)?[- ](?:not[- ]equals?(?:[- ]to)?|"
        r"inequality|unequal)|not[- ]triple[- ]equals?|"
        r"bang[- ](?:double[- ]equals?|equals[- ]equals)",
        "!==",
    ),
    (
        r"strict(?:ly)?[- ]equal(?:s|ity)?(?:[- ]to)?|triple[- ]equals?(?:[- ]signs?)?|"
        r"three[- ]equals?[- ]signs|equals[- ]equals[- ]equals",
        "===",
    ),
    (
        r"loose(?:ly)?[- ](?:inequality|unequal|not[- ]equals?(?:[- ]to)?)|"
        r"not[- ]loosely[- ]equals?(?:[- ]to)?",
        "!=",
    ),
    (r"loose(?:ly)?[- ]equal(?:s|ity)?(?:[- ]to)?|abstract[- ]equality", "=="),
    (r"less[- ]than[- ]or[- ]equal(?:[- ]to)?", "<="),
    (r"greater[- ]than[- ]or[- ]equal(?:[- ]to)?", ">="),
    (r"not[- ]equals?(?:[- ]to)?", "!="),
    (r"double[- ]equals?|equals[- ]equals", "=="),
    (r"plus[- ]equals?", "+="),
    (r"minus[- ]equals?", "-="),
    (r"times[- ]equals?", "*="),
    (r"floor[- ]division|integer[- ]division|double[- ]slash", "//"),
    (r"less[- ]than", "<"),
    (r"greater[- ]than", ">"),
    (r"plus(?:[- ]sign)?|addition", "+"),
    (r"minus(?:[- ]sign)?|subtraction", "-"),
    (r"times|multiplication|asterisk", "*"),
    (r"division|slash", "/"),
    (r"modulo|modulus|remainder|percent(?:[- ]sign)?", "%"),
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    )
}
_SYMBOL = r"===|!==|<=|>=|==|!=|\+=|-=|\*=|//|&&|\|\||[<>+\-*/%]"
# Keywords a fix can swap one for another, as a learner's code spells them (longest first).
# Each is an operator only where the words around it say so ("use or instead of and", "the
# is", "replace in with not in"), not in the prose these words are most often part of.
_KEYWORDS = r"is\s+not|not\s+in|and|or|is|in|true|false|none|null|break|continue|elif|if|while"
KEYWORD = re.compile(rf"(?i)\b(?:{_KEYWORDS})\b")
BEFORE_KEYWORD = frozenset(
    re.findall(r"\w+", "the an a logical use using with of to into for replace change by than")
)
AFTER_KEYWORD = frozenset(
    re.findall(r"\w+", "instead operator keyword with to for rather here there")
)
# After these, the keyword names a construct ("the while loop", "the if statement").
_CONSTRUCT = frozenset(
    re.findall(r"\w+", "loop loops statement statements clause block branch body part line")
)
# Keywords that head a statement: "in the if" or "inside the while" names that statement.
_BLOCK_KEYWORDS = frozenset({"if", "elif", "while"})
_PLACE_BEFORE = re.compile(r"(?i)\b(?:in|inside|within|of)\s+(?:the|this|that|your)\s+$")
# The same operator or constant in Python's spelling and in JavaScript's.
_SPELLINGS = {
    "and": "&&", "or": "||", "&&": "and", "||": "or", "True": "true", "False": "false",
    "None": "null",
}  # fmt: skip
_CONSTANTS = {"true": "True", "false": "False", "none": "None", "null": "None"}
_MENTION = re.compile(
    rf"(?P<logic>\b(?:{_KEYWORDS})\b)|"
    + "|".join(f"(?P<w{i}>\\b(?:{p})\\b)" for i, (p, _) in enumerate(_OPERATOR_WORDS))
    + rf"|(?P<sym>(?<![\w<>=!+\-*/%])(?:{_SYMBOL})(?![\w<>=!+\-*/%]))"
    + r"|(?P<num>(?<![\w.])\d+(?!\w|\.\d)|\b(?:"
    + "|".join(_NUMBER_WORDS)
    + r")\b)",
    re.IGNORECASE,
)
_VERB = re.compile(
    r"(?i)\b(?:change|replace|turn|switch|flip|use|make|should|must|needs?|write|put|add|negate|"
    r"invert|return|set)\b"
)
_NEGATE = re.compile(
    r"(?i)\b(?:negate|invert)\b"
    r"|\b(?:put|add|insert|place)\s+(?:an?\s+|the\s+)?(?:not|!|negation)\s+"
    r"(?:in\s+front\s+of|before|at\s+the\s+start\s+of)\b"
)
_SWAP = re.compile(
    r"(?i)\b(?:swap|switch|reverse|flip)\b[^.?!]*?\b(?P<what>arguments|args|parameters)\b"
)
_INSTEAD = re.compile(r"(?i)\b(?:instead\s+of|rather\s+than|in\s+place\s+of)\b")
# "A, not B" or "A and not B": A is the one wanted.
_CONTRAST = re.compile(r"(?i)(?:,\s*|\band\s+)not\s+(?:an?\s+|the\s+)?")
_TO = re.compile(r"(?i)\b(?:to|with|into|for|should\s+be|must\s+be|needs\s+to\s+be|becomes?)\b")
_LINE = re.compile(r"(?i)\bline\s+(?P<n>\d{1,4})\b")
_TOKEN = re.compile(
    r"""("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|(\d+(?:\.\d+)?)|([A-Za-z_$][\w$]*)
    |(\*\*=|//=|===|!==|\*\*|//|==|!=|<=|>=|\+=|-=|\*=|/=|%=|&&|\|\||=>|[^\s\w])""",
    re.VERBOSE,
)
# Words a reply names an operator or a swap with: a reply with none of them is not read here.
_HINT = re.compile(
    r"(?i)\b(?:plus|minus|times|modulo|modulus|remainder|less|greater|equals?|slash|asterisk|"
    r"addition|subtraction|multiplication|division|swap|arguments|negate|invert|strict(?:ly)?|"
    r"loose(?:ly)?|triple|equality|inequality)\b"
    r"|\bthe\s+\d+\b|\s(?:===|!==|<=|>=|==|!=|&&|\|\||[<>+\-*/%])\s"
    rf"|\b(?:{_KEYWORDS})\s+(?:{'|'.join(AFTER_KEYWORD)})\b"
    rf"|\b(?:{'|'.join(BEFORE_KEYWORD)})\s+(?:{_KEYWORDS})\b"
    r"|\b(?:put|add|insert|place)\s+(?:an?\s+)?not\b"
)
# A span holding one operator, number or keyword ("change the minus to a `+`") reads as the
# word would.
_LONE_SPAN = re.compile(rf"`\s*((?:{_SYMBOL}|\d+|(?i:{_KEYWORDS})))\s*`")

_MAX_PLACES = 3
_STRICT = frozenset({"===", "!=="})


@dataclass(frozen=True, slots=True)
class Change:
    """One change said in words: `new` for `old` (operators or numbers), or a swap of the
    arguments of a call; where: a line, a kind of line, or a function's name."""

    old: str = ""
    new: str = ""
    swap: bool = False
    negate: bool = False
    line: int | None = None
    role: str | None = None  # "condition", "return"
    callee: str | None = None
    evidence: str = ""


def mentions_edit(reply: str) -> bool:
    """Whether the reply may state a change in words (a cheap test before reading it)."""
    return bool(_HINT.search(reply)) and bool(_VERB.search(reply) or _SWAP.search(reply))


def changes(reply: str) -> list[Change]:
    """The changes the reply states in words, in its prose outside code."""
    found: list[Change] = []
    prose = re.sub(r"(?ms)^[ \t]*(`{3,}|~{3,}).*?^[ \t]*\1[ \t]*$", "\n", reply)
    for sentence in re.split(r"(?<=[.!?])\s+|\n", prose):
        if "`" in sentence:
            sentence = _LONE_SPAN.sub(r" \1 ", sentence)
        if "`" in sentence or not mentions_edit(sentence):
            continue  # spans of code are read by `patches.prose_edits`
        where = _where(sentence)
        if _NEGATE.search(sentence):
            found.append(replace(where, negate=True))
            continue
        swap = _SWAP.search(sentence)
        if swap is not None:
            # A definition's parameters are swapped when the sentence names parameters.
            role = "definition" if swap.group("what").lower() == "parameters" else where.role
            found.append(replace(where, swap=True, role=role))
            continue
        for old, new in _operator_changes(sentence):
            found.append(replace(where, old=old, new=new))
    return found


def _where(sentence: str) -> Change:
    """A change of nothing yet, at the place the sentence names."""
    line = _LINE.search(sentence)
    role = None
    if re.search(r"(?i)\b(?:condition|check|test|loop|while|if)\b", sentence):
        role = "condition"
    elif re.search(r"(?i)\breturn", sentence):
        role = "return"
    callee = re.search(
        r"(?i)\b(?:to|of|in)\s+(?:the\s+call\s+to\s+)?(?P<name>[A-Za-z_]\w*)\s*[.?!]?$",
        sentence.strip(),
    )
    return Change(
        line=int(line.group("n")) if line else None,
        role=role,
        callee=callee.group("name") if callee else None,
        evidence=sentence.strip(),
    )


def _mentions(text: str) -> list[tuple[int, str]]:
    out = []
    for match in _MENTION.finditer(text):
        kind = match.lastgroup or ""
        word = match.group(0)
        if kind == "logic":
            if names_operator(text, match.start(), match.end()):
                spelled = " ".join(word.lower().split())
                out.append((match.start(), _CONSTANTS.get(spelled, spelled)))
        elif kind.startswith("w"):
            out.append((match.start(), _OPERATOR_WORDS[int(kind[1:])][1]))
        elif kind == "num":
            out.append((match.start(), _NUMBER_WORDS.get(word.lower(), word)))
        else:
            out.append((match.start(), word))
    return out


def names_operator(text: str, start: int, end: int) -> bool:
    """Whether the keyword at `text[start:end]` names the operator: a word that introduces an
    operator stands right before it, or one that follows an operator right after it."""
    before = re.search(r"([A-Za-z]+)\s+$", text[max(0, start - 40) : start])
    after = re.match(r"\s+([A-Za-z]+)", text[end : end + 40])
    following = after.group(1).lower() if after else ""
    if following in _CONSTRUCT:
        return False
    if text[start:end].lower() in _BLOCK_KEYWORDS and _PLACE_BEFORE.search(
        text[max(0, start - 30) : start]
    ):
        return False  # "the == in the if": the statement is where the change goes
    preceding = before.group(1).lower() if before else ""
    return preceding in BEFORE_KEYWORD or following in AFTER_KEYWORD


def _operator_changes(sentence: str) -> list[tuple[str, str]]:
    """Each (old, new) the sentence can mean, the likelier first. Line numbers are places, not
    values. "Should be a plus, not a minus" names the right one first: read that way, and the
    usual way too, since the words after "not" can also name what to leave alone ("change
    the minus to a plus, not the times")."""
    masked = _LINE.sub(lambda m: " " * len(m.group(0)), sentence)
    mentions = _mentions(masked)
    if len(mentions) < 2 or not _VERB.search(sentence):
        return []
    readings: list[tuple[str, str]] = []
    contrast = _CONTRAST.search(masked)
    if contrast is not None:
        right = [m for m in mentions if m[0] < contrast.start()]
        wrong = [m for m in mentions if m[0] >= contrast.end()]
        if right and wrong and (pair := _pair(wrong[0][1], right[-1][1])) is not None:
            readings.append(pair)
        # The "not" itself is no operator here.
        mentions = [m for m in mentions if not contrast.start() <= m[0] < contrast.end()]
    usual = _operator_change(masked, mentions) if len(mentions) >= 2 else None
    if usual is not None and usual not in readings:
        readings.append(usual)
    return readings


def _operator_change(masked: str, mentions: list[tuple[int, str]]) -> tuple[str, str] | None:
    """(old, new) read the usual way: "instead of", or "from ... to"."""
    instead = _INSTEAD.search(masked)
    if instead is not None:
        before = [m for m in mentions if m[0] < instead.start()]
        after = [m for m in mentions if m[0] >= instead.end()]
        if before and after:
            return _pair(after[0][1], before[-1][1])
        return None
    first = mentions[0]
    to = _TO.search(masked, first[0] + 1)
    if to is None:
        return None
    after = [m for m in mentions if m[0] >= to.end()]
    before = [m for m in mentions if m[0] < to.start()]
    if not after or not before:
        return None
    return _pair(before[-1][1], after[0][1])


def _pair(old: str, new: str) -> tuple[str, str] | None:
    if old == new or old.isdigit() != new.isdigit():
        return None
    return old, new


# -- applying them -------------------------------------------------------------------------------


def programs(reply: str, attempt: str, language: str | None = None) -> Iterator[tuple[str, str]]:
    """(program, evidence) for each change the reply states in words, most literal first.
    `language`: python or javascript; None reads it from the attempt."""
    for change in changes(reply):
        for program in apply(attempt, change, language):
            yield program, change.evidence


def apply(attempt: str, change: Change, language: str | None = None) -> list[str]:
    """The programs a change can mean: each place on its own, then all of them."""
    if _STRICT & {change.old, change.new} and not _javascript(attempt, language):
        return []  # Python has no strict comparison: `===` there is no fix, only an error
    lines = attempt.splitlines()
    targets = _target_lines(lines, change)
    # "swap the arguments to pow": that call, when the attempt calls it.
    callee = change.callee
    if callee is None or not re.search(rf"\b{re.escape(callee)}\s*\(", attempt):
        callee = None
    edits: list[tuple[int, int, int, str]] = []  # (line, start, end, new text)
    for index in targets:
        if change.negate:
            negated = _negation(lines[index])
            if negated is not None:
                edits.append((index, 0, len(lines[index]), negated))
        elif change.swap:
            swaps = _swaps(lines[index], callee, definition=change.role == "definition")
            edits.extend((index, *swap) for swap in swaps)
        else:
            edits.extend((index, *sub) for sub in _substitutions(lines[index], change))
    if not edits and change.line is None and change.role is not None and not change.negate:
        # "Use continue instead of break in the loop": the `break` is in the loop, not on the
        # line that opens it. Where the kind of line named holds nothing to change, every line.
        every = replace(change, role=None)
        return apply(attempt, every) if _target_lines(lines, every) != targets else []
    results = []
    for edit in edits[:_MAX_PLACES]:
        results.append(_edited(lines, [edit]))
    if len(edits) > 1:
        results.append(_edited(lines, edits))
    return results


def _javascript(attempt: str, language: str | None) -> bool:
    if language is not None:
        return language == "javascript"
    # Braces and semicolons end JavaScript's lines, a colon or a name Python's.
    return re.search(r"[{};]\s*$", attempt, re.MULTILINE) is not None


def _edited(lines: list[str], edits: list[tuple[int, int, int, str]]) -> str:
    out = [*lines]
    for index, start, end, new in sorted(edits, key=lambda e: (e[0], -e[1])):
        out[index] = out[index][:start] + new + out[index][end:]
    return "\n".join(out) + "\n"


def _target_lines(lines: list[str], change: Change) -> list[int]:
    if change.line is not None:
        return [change.line - 1] if 1 <= change.line <= len(lines) else []
    every = [i for i, text in enumerate(lines) if text.strip()]
    if change.negate and change.role != "return":
        # What is negated is a condition: of an `if`, an `elif` or a `while`.
        head = r"\s*(?:\}\s*)?(?:if|elif|while|else\s+if)\b"
        return [i for i in every if re.match(head, lines[i])]
    if change.role == "condition":
        chosen = [i for i in every if re.match(r"\s*(?:\}\s*)?(?:if|elif|while|for)\b", lines[i])]
    elif change.role == "return":
        chosen = [i for i in every if re.match(r"\s*return\b", lines[i])]
    else:
        chosen = []
    return chosen or every


def _substitutions(line: str, change: Change) -> Iterator[tuple[int, int, str]]:
    if " " in change.old:  # `is not`, `not in`
        pattern = r"\b" + r"\s+".join(change.old.split()) + r"\b"
        for match in re.finditer(pattern, line):
            yield match.start(), match.end(), change.new
        return
    tokens = list(_TOKEN.finditer(line))
    for index, match in enumerate(tokens):
        token = match.group(0)
        before = tokens[index - 1].group(0) if index else ""
        after = tokens[index + 1].group(0) if index + 1 < len(tokens) else ""
        if (token, before) == ("in", "not") or (token, after) == ("is", "not"):
            continue  # the `in` of `not in` is not the `in` named, nor the `is` of `is not`
        if token == change.old:
            yield match.start(), match.end(), change.new
        elif change.old in _SPELLINGS and token == _SPELLINGS[change.old]:
            # "use and instead of or" in JavaScript is `&&` for `||`, "false" is `false`.
            yield match.start(), match.end(), _SPELLINGS.get(change.new, change.new)
        elif change.old in "+-*/%" and change.new in "+-*/%" and token == change.old + "=":
            # "the minus" in `total -= n` is the minus of the augmented assignment.
            yield match.start(), match.end(), change.new + "="


def _negation(line: str) -> str | None:
    """The line with its condition (or returned value) negated: `if not (x):` in Python,
    `if (!(x)) {` in JavaScript; None when it has neither."""
    python = re.match(r"(\s*(?:if|elif|while|return)\s+)(.+?)(\s*:?\s*(?:#.*)?)$", line)
    braced = re.match(r"\s*(?:\}\s*)?(?:if|while|else\s+if)\s*\(", line)
    if braced is not None:
        args = _arguments(line, braced.end())
        if args is None:
            return None
        inner = line[braced.end() : args[1]]
        return f"{line[: braced.end()]}!({inner}){line[args[1] :]}"
    if python is None:
        return None
    head, condition, tail = python.groups()
    if head.strip() == "return" and condition.endswith(";"):
        return f"{head}!({condition[:-1]});{tail}"
    if not tail.strip().startswith(":") and head.strip() != "return":
        return None
    return f"{head}not ({condition}){tail}"


def _swaps(line: str, callee: str | None, *, definition: bool) -> Iterator[tuple[int, int, str]]:
    if bool(re.match(r"\s*(?:async\s+)?(?:def|function)\b", line)) != definition:
        return  # a definition's parameters are not a call's arguments, nor the other way
    for match in re.finditer(r"(?P<name>[A-Za-z_$][\w$.]*)\s*\(", line):
        name = match.group("name").rsplit(".", 1)[-1]
        if callee is not None and name != callee:
            continue
        args = _arguments(line, match.end())
        if args is None or len(args[0]) != 2:
            continue
        (first, second), end = args
        yield match.end(), end, f"{second.strip()}, {first.strip()}"


def _arguments(line: str, start: int) -> tuple[list[str], int] | None:
    """The top-level arguments of the call whose `(` ends at `start`, and where they end."""
    depth, parts, at = 0, [], start
    for i in range(start, len(line)):
        char = line[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                parts.append(line[at:i])
                return parts, i
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(line[at:i])
            at = i + 1
    return None
