"""Runs an exercise's Python tests against solution.py, inside the sandbox (stdlib only).

Conventions (docs/exercise-format.md): the tests are a module of ``test_*`` functions with plain
``assert``, importing from ``solution``; run in definition order; a test passes if it returns,
fails on AssertionError, errors on anything else. Results go to the parent through ``emit`` (the
private verdict channel), never through stdout/stderr, which belong to the learner.
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import os
import reprlib
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any, NoReturn

Emit = Callable[[dict[str, Any]], None]

MESSAGE_LIMIT = 4000
LEARNER_FILES = ("solution.py", "tests.py")

_repr = reprlib.Repr()
_repr.maxstring = 160
_repr.maxother = 160
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 12


def run(job: dict[str, Any], emit: Emit, workdir: str) -> NoReturn:
    """Import the solution, run every test, report each, then exit the process."""
    # Fresh line-buffered streams: prints made just before a timeout still reach the learner.
    sys.stdout = _text_stream(1, "w")
    sys.stderr = _text_stream(2, "w")
    sys.stdin = _text_stream(0, "r")
    sys.argv = ["solution.py"]
    sys.dont_write_bytecode = True
    sys.path[:] = [workdir] + [p for p in sys.path if p.startswith("/usr/")]

    source = str(job["tests"])
    tests_path = os.path.join(workdir, "tests.py")
    # The tests are not on disk (hidden tests stay hidden): tracebacks read their lines here.
    linecache.cache[tests_path] = (len(source), None, source.splitlines(True), tests_path)
    try:
        tree = ast.parse(source, tests_path)
    except SyntaxError as exc:
        # A broken exercise, not a broken submission: still a clean error for the author.
        emit({"t": "plan", "tests": ["tests.py"]})
        emit({"t": "test", "name": "tests.py", "status": "error", "message": describe(exc)})
        finish(emit, "import")
    names = discover(tree)
    emit({"t": "plan", "tests": names})

    failure: BaseException | None = None
    namespace: dict[str, Any] = {}
    try:
        load_solution(str(job["code"]), os.path.join(workdir, "solution.py"))
        module = types.ModuleType("tests")
        module.__file__ = tests_path
        sys.modules["tests"] = module
        namespace = module.__dict__
        namespace["_koan_explain"] = explain
        code = compile(rewrite_asserts(tree, source), tests_path, "exec", dont_inherit=True)
        exec(code, namespace)
    except BaseException as exc:  # noqa: B036 - SystemExit at import is the submission's error too
        failure = exc
    if failure is not None:
        message = describe(failure)
        for name in names:
            emit(outcome(name, "error", message, failure))
        finish(emit, "import")

    for name in names:
        function = namespace.get(name)
        if not callable(function):
            message = f"{name} is not a function"
            emit({"t": "test", "name": name, "status": "error", "message": message})
            continue
        emit(run_one(name, function))
    finish(emit, "tests")


def _text_stream(fd: int, mode: str) -> Any:
    return open(fd, mode, encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)


def load_solution(source: str, path: str) -> types.ModuleType:
    """Import solution.py as `solution` from the source in hand (no path search needed).

    The file is on disk too, so tracebacks, linecache and inspect find its lines.
    """
    module = types.ModuleType("solution")
    module.__file__ = path
    sys.modules["solution"] = module
    try:
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        del sys.modules["solution"]
        raise
    return module


def finish(emit: Emit, phase: str) -> NoReturn:
    """Flush the learner's output, send the end record and leave (skipping atexit and threads)."""
    for stream in (sys.stdout, sys.stderr):
        # The learner may have closed or replaced their own streams.
        with contextlib.suppress(BaseException):
            stream.flush()
    emit({"t": "end", "phase": phase})
    os._exit(0)


def discover(tree: ast.Module) -> list[str]:
    """Top-level test_* functions, in definition order."""
    names: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name.startswith("test_") and node.name not in names:
            names.append(node.name)
    return names


def run_one(name: str, function: Callable[[], Any]) -> dict[str, Any]:
    """Run one test function and classify what happened."""
    try:
        result = function()
        if isinstance(result, types.CoroutineType):
            import asyncio

            asyncio.run(result)
    except AssertionError as exc:
        return outcome(name, "failed", assertion_message(exc), exc)
    except BaseException as exc:  # noqa: B036 - sys.exit() in a test is an error, not an exit
        return outcome(name, "error", describe(exc), exc)
    return {"t": "test", "name": name, "status": "passed", "message": ""}


def outcome(name: str, status: str, message: str, exc: BaseException) -> dict[str, Any]:
    """A test record; exc names the exception type so the parent can spot MemoryError."""
    return {
        "t": "test",
        "name": name,
        "status": status,
        "message": clip(message),
        "exc": type(exc).__name__,
    }


def clip(text: str) -> str:
    """Keep messages short enough to show and to send."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def learner_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback that is in solution.py or tests.py."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.basename(frame.filename) in LEARNER_FILES:
            found = frame
    return found


def where(frame: traceback.FrameSummary | None) -> str:
    """' (solution.py, line 3)' or nothing."""
    if frame is None:
        return ""
    return f" ({os.path.basename(frame.filename)}, line {frame.lineno})"


def describe(exc: BaseException) -> str:
    """'ValueError: bad value (solution.py, line 3)'."""
    if isinstance(exc, SyntaxError):
        filename = os.path.basename(exc.filename or "solution.py")
        text = f"{type(exc).__name__}: {exc.msg} ({filename}, line {exc.lineno})"
        if exc.text:
            text += f"\n    {exc.text.strip()}"
        return text
    if isinstance(exc, SystemExit):
        return f"SystemExit: the code called exit({exc.code!r})"
    detail = str(exc)
    head = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return head + where(learner_frame(exc))


def assertion_message(exc: AssertionError) -> str:
    """The assertion's own message, else the failing line."""
    if str(exc):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    frame = frames[-1] if frames else None
    if frame is not None and frame.line:
        return f"failed: {frame.line.strip()}{where(frame)}"
    return "assertion failed" + where(learner_frame(exc))


def explain(source: str, left: object, op: str, right: object) -> str:
    """Message for a rewritten bare `assert a <op> b`: the line and both values."""
    return f"assert {source}\n  left:  {safe_repr(left)}\n  right: {safe_repr(right)}"


def safe_repr(value: object) -> str:
    """A short repr that survives a learner's broken __repr__."""
    try:
        return _repr.repr(value)
    except BaseException as exc:  # noqa: B036 - their __repr__ may raise anything
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"


class _AssertRewriter(ast.NodeTransformer):
    """Turn `assert a == b` (no message) into code that reports both values when it fails.

    Each side is evaluated once, in order, exactly as the original comparison would be.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def visit_Assert(self, node: ast.Assert) -> Any:
        test = node.test
        if node.msg is not None or not isinstance(test, ast.Compare) or len(test.ops) != 1:
            return node
        text = ast.get_source_segment(self.source, test) or ast.unparse(test)
        op = ast.unparse(ast.Compare(left=ast.Name("a"), ops=test.ops, comparators=[ast.Name("b")]))
        store = [ast.Name(f"_koan_{side}", ast.Store()) for side in ("left", "right")]
        load = [ast.Name(f"_koan_{side}", ast.Load()) for side in ("left", "right")]
        statements: list[ast.stmt] = [
            ast.Assign(targets=[store[0]], value=test.left),
            ast.Assign(targets=[store[1]], value=test.comparators[0]),
            ast.If(
                test=ast.UnaryOp(
                    ast.Not(), ast.Compare(left=load[0], ops=test.ops, comparators=[load[1]])
                ),
                body=[
                    ast.Raise(
                        exc=ast.Call(
                            func=ast.Name("AssertionError", ast.Load()),
                            args=[
                                ast.Call(
                                    func=ast.Name("_koan_explain", ast.Load()),
                                    args=[
                                        ast.Constant(" ".join(text.split())),
                                        load[0],
                                        ast.Constant(op[2:-2]),
                                        load[1],
                                    ],
                                    keywords=[],
                                )
                            ],
                            keywords=[],
                        ),
                        cause=None,
                    )
                ],
                orelse=[],
            ),
        ]
        for statement in statements:
            ast.copy_location(statement, node)
        return statements


def rewrite_asserts(tree: ast.Module, source: str) -> ast.Module:
    """The tests with bare comparisons rewritten (in place); a fresh parse if that fails."""
    try:
        rewritten: ast.Module = _AssertRewriter(source).visit(tree)
        return ast.fix_missing_locations(rewritten)
    except (SyntaxError, ValueError, TypeError):
        return ast.parse(source)
