"""Does a tutor reply give away the reference solution? (pure functions, no I/O)

The reply's code (fenced blocks, indented or code-looking lines, long inline spans) is
normalized so that renaming variables, reformatting, adding comments or docstrings, or
moving the code into a differently tagged fence does not hide it: Python goes through its AST
(docstrings, comments, annotations and formatting dropped), JavaScript and other languages through a
comment-free token stream; identifiers are then renamed canonically inside every window of k
tokens. The score is the share of the solution's tokens (minus what the starter code already
shows) covered by k-token windows that also occur in the reply's code.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import re
import textwrap
from collections.abc import Sequence

from koan.llm.patches import multiline_literals, strip_markers, unwrap_string

DEFAULT_THRESHOLD = 0.6
# Below both of these a snippet is a hint-sized illustration, not a solution.
MIN_MEANINGFUL_LINES = 3
MIN_TOKENS = 24
# Runs of this many normalized tokens must match. Shorter runs (`for x in xs:`, `result = []`)
# are shared by any accumulator loop; seven tokens tell a solution from a look-alike example.
_K = 7

_PY_KEEP = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
_IDENT = "@"
# fmt: off
_JS_KEYWORDS = frozenset(
    {
        # keywords
        "function", "return", "if", "else", "for", "while", "do", "of", "in", "new", "class",
        "extends", "this", "super", "true", "false", "null", "undefined", "typeof",
        "instanceof", "let", "const", "var", "break", "continue", "switch", "case", "default",
        "try", "catch", "finally", "throw", "async", "await", "yield", "import", "export",
        "from", "delete", "void", "static", "get", "set",
        # globals a solution uses the same way whatever its variables are called
        "Math", "Array", "Object", "String", "Number", "Boolean", "JSON", "Map", "Set",
        "Promise", "console", "parseInt", "parseFloat", "isNaN", "Infinity", "NaN", "Symbol",
        "Date", "RegExp", "Error",
    }
)
# fmt: on
_GENERIC_KEEP = _PY_KEEP | _JS_KEYWORDS

_TOKEN = re.compile(
    r"""
    (?P<str>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)
    |(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<id>[A-Za-z_$][\w$]*)
    |(?P<op>===|!==|\*\*=|//=|>>=|<<=|\.\.\.|=>|==|!=|<=|>=|//|\*\*|\+=|-=|\*=|/=|%=|&&|\|\||->|\+\+|--|[^\s\w])
    """,
    re.VERBOSE,
)
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_INLINE = re.compile(r"`([^`\n]{40,})`")
_CODE_START = re.compile(
    r"""^\s*(
        (def|class|return|for|while|if|elif|else|try|except|finally|with|import|from|yield|
         lambda|raise|assert|pass|break|continue|function|const|let|var|async|await|throw|
         switch|case)\b
        |[\]\)\}]
        |[\w.\[\]'"]+\s*(\+|-|\*|/|//|%|\*\*)?=\s*[^=\s]
        |[\w.]+\(.*\)\s*;?\s*$
    )""",
    re.VERBOSE,
)
_CODE_END = re.compile(r"[:{;(\[,]\s*$|^\s*[)\]}]+;?\s*$")
_PROSE = re.compile(r"^\s*(?:[-*]\s+)?[A-Z][a-z']*(?:\s+[A-Za-z',]+){3,}[.!?:]\s*$")


def normalize_language(language: str | None) -> str:
    """python, javascript or other."""
    lowered = (language or "").lower()
    if lowered in {"py", "python", "python3"}:
        return "python"
    if lowered in {"js", "javascript", "node", "typescript", "ts", "mjs"}:
        return "javascript"
    return "other"


def extract_code(reply: str) -> list[str]:
    """Code segments of a reply: fenced blocks, runs of code-looking lines, long inline spans.

    List, quote and line-number markers and string-literal wrapping are removed first: a
    solution written as `1. def f(...):` is still code."""
    segments = [
        unwrap_string(strip_markers(m.group("body")))
        for m in _FENCE.finditer(reply)
        if m.group("body").strip()
    ]
    prose = strip_markers(_FENCE.sub("\n", reply))
    for literal in multiline_literals(prose):
        segments.append(unwrap_string(literal))
        prose = prose.replace(literal, " ")
    segments.extend(_INLINE.findall(prose))
    prose = _INLINE.sub(" ", prose)
    run: list[str] = []
    for line in [*prose.splitlines(), ""]:
        if line.strip() and _looks_like_code(line):
            run.append(line)
        elif not line.strip() and run:
            # A blank line may separate two parts of one function; keep the run open.
            run.append(line)
        else:
            if any(x.strip() for x in run):
                segments.append("\n".join(run).strip("\n"))
            run = []
    if any(x.strip() for x in run):  # code that ends the reply
        segments.append("\n".join(run).strip("\n"))
    return segments


def _looks_like_code(line: str) -> bool:
    if _PROSE.match(line):
        return False
    if line.startswith(("    ", "\t")):
        return True
    return bool(_CODE_START.match(line) or _CODE_END.search(line))


def meaningful_lines(code: str) -> int:
    """Lines that do something: not blank, not comments, not lone brackets or `pass`."""
    count = 0
    for raw in code.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//", "/*", "*")):
            continue
        if re.fullmatch(r"[\[\](){};,]+|pass|\.\.\.", line):
            continue
        count += 1
    return count


class _Canonicalize(ast.NodeTransformer):
    """Drop docstrings and annotations: they vary without changing what the code does."""

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        node.body = _strip_docstrings(node.body)
        self.generic_visit(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = _strip_docstrings(node.body)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        # `total: int = 0` and `total = 0` are the same step of a solution.
        self.generic_visit(node)
        if node.value is None:
            return ast.Pass()
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)


def _strip_docstrings(body: list[ast.stmt]) -> list[ast.stmt]:
    kept = [
        stmt
        for stmt in body
        if not (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        )
    ]
    return kept or [ast.Pass()]


def _python_ast_tokens(code: str) -> list[str] | None:
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None
    tree.body = _strip_docstrings(tree.body)
    canonical = ast.fix_missing_locations(_Canonicalize().visit(tree))
    return _lex(ast.unparse(canonical), _PY_KEEP)


def _strip_comments(code: str, language: str) -> str:
    def keep_strings(match: re.Match[str]) -> str:
        return match.group(0) if match.group("s") else " "

    if language == "python":
        pattern = r"(?P<s>\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*')|#[^\n]*"
    else:
        pattern = (
            r"(?P<s>\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)"
            r"|//[^\n]*|/\*.*?\*/|#[^\n]*"
        )
    return re.sub(pattern, keep_strings, code, flags=re.DOTALL)


def _lex(code: str, keep: frozenset[str]) -> list[str]:
    tokens: list[str] = []
    previous = ""
    for match in _TOKEN.finditer(code):
        kind = match.lastgroup
        text = match.group(0)
        if kind == "str":
            # Quote style is formatting, the content is not.
            token = "S:" + text[1:-1]
        elif kind == "id":
            if text in {"let", "const", "var"}:
                token = "let"
            elif previous == "." or text in keep:
                token = text
            else:
                # Marked, not erased: windows are renamed canonically when compared.
                token = _IDENT + text
        elif kind == "op" and text in {";", "(", ")"}:
            # Semicolons (ASI) and redundant parentheses differ between formatters.
            previous = text
            continue
        else:
            token = text
        tokens.append(token)
        previous = text
    return tokens


def normalized_tokens(code: str, language: str) -> list[str]:
    """The canonical token sequence compared by the leak score."""
    lang = normalize_language(language)
    if lang == "python":
        via_ast = _python_ast_tokens(code)
        if via_ast is not None:
            return via_ast
        return _lex(_strip_comments(code, "python"), _PY_KEEP)
    keep = _JS_KEYWORDS if lang == "javascript" else _GENERIC_KEEP
    return _lex(_strip_comments(code, lang), keep)


def _window(tokens: Sequence[str], start: int, k: int) -> tuple[str, ...]:
    """k tokens with identifiers renamed by first appearance inside the window.

    Renaming per window rather than per file keeps data flow (`a = b; a.append(b)`) while
    staying independent of what came before, so an excerpt matches the whole solution.
    """
    names: dict[str, str] = {}
    out = []
    for token in tokens[start : start + k]:
        if token.startswith(_IDENT):
            token = names.setdefault(token, f"v{len(names)}")
        out.append(token)
    return tuple(out)


def _grams(tokens: Sequence[str], k: int) -> set[tuple[str, ...]]:
    return {_window(tokens, i, k) for i in range(len(tokens) - k + 1)}


def _substantial(code: str, tokens: Sequence[str]) -> bool:
    return meaningful_lines(code) >= MIN_MEANINGFUL_LINES or len(tokens) >= MIN_TOKENS


@functools.lru_cache(maxsize=256)
def _solution_windows(
    solution: str, language: str, starter: str | None
) -> tuple[int, tuple[tuple[str, ...], ...], frozenset[int]]:
    """(k, the solution's k-token windows, the token positions that are secret): the same
    for every reply about an exercise, so worked out once."""
    solution_tokens = normalized_tokens(solution, language)
    k = min(_K, max(3, len(solution_tokens) // 4))
    if len(solution_tokens) < k:
        return k, (), frozenset()
    windows = tuple(_window(solution_tokens, i, k) for i in range(len(solution_tokens) - k + 1))
    secret = set(range(len(solution_tokens)))
    if starter:
        # What the learner was given (signature, scaffolding) is not a leak when repeated.
        starter_grams = _grams(normalized_tokens(starter, language), k)
        secret -= _covered_by(windows, starter_grams, k)
    return k, windows, frozenset(secret)


def _covered_by(
    windows: Sequence[tuple[str, ...]], grams: set[tuple[str, ...]], k: int
) -> set[int]:
    positions: set[int] = set()
    for i, window in enumerate(windows):
        if window in grams:
            positions.update(range(i, i + k))
    return positions


def leak_score(
    reply: str,
    solution: str,
    language: str = "python",
    *,
    starter: str | None = None,
) -> float:
    """How much of the solution the reply's code reproduces, from 0.0 (none) to 1.0 (all)."""
    k, windows, secret = _solution_windows(solution, language, starter or None)
    if not secret:
        return 0.0
    segments = extract_code(reply)
    candidates: list[str] = [*segments]
    if len(segments) > 1:
        # A solution handed out a few lines at a time still adds up to the solution.
        candidates.append("\n".join(segments))
    best = 0.0
    for code in candidates:
        tokens = normalized_tokens(code, language)
        if not _substantial(code, tokens):
            continue
        covered = _covered_by(windows, _grams(tokens, k), k) & secret
        best = max(best, len(covered) / len(secret))
    return round(best, 4)


def is_leak(
    reply: str,
    solution: str,
    language: str = "python",
    threshold: float = DEFAULT_THRESHOLD,
    *,
    starter: str | None = None,
) -> bool:
    """Whether the reply gives away enough of the solution to withhold it."""
    return leak_score(reply, solution, language, starter=starter) >= threshold
