"""Runs an exercise's Python tests against solution.py, inside the sandbox (stdlib only).

Conventions (docs/exercise-format.md): the tests are a module of ``test_*`` functions with plain
``assert``, importing from ``solution``; run in definition order; a test passes if it returns,
fails on AssertionError, errors on anything else. Results go to the parent through ``emit`` (the
private verdict channel), never through stdout/stderr, which belong to the learner.

The learner's code runs in this interpreter, so before it runs the harness takes itself out of
its reach (docs/sandbox.md, "The verdict channel"): an audit hook refuses frames, the garbage
collector's object lists, tracing, ctypes, and making or loading bytecode; the harness modules
leave sys.modules; and every comparison in the tests goes through ``strict_compare``, bound into
the tests' code as a constant, under which a learner's object never equals a plain value.
"""

from __future__ import annotations

import ast
import binascii
import builtins
import contextlib
import importlib.util
import linecache
import marshal
import os
import reprlib
import signal
import sys
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


def run(job: dict[str, Any], emit: Emit, workdir: str, armed: list[bool]) -> NoReturn:
    """Import the solution, run every test, report each, then exit the process.

    The work is done by copies of this module's functions whose globals (and builtins) are a
    private snapshot: the solution can reach this module's own namespace (through a class's
    methods, from object.__subclasses__()), but changing it changes nothing that runs here.

    A job with `programs` instead of `code` is a trial (the tutor's guard trying the fixes a
    reply suggests): each program in turn, see `_trial`; `armed` is the switch of its alarm
    (`claim_signals`).
    """
    snapshot = _snapshot()
    tests = snapshot["_compile"](job, workdir)
    native = bool(job.get("native"))
    if "programs" in job:
        snapshot["_trial"](tests, job, emit, workdir, native, armed)
    snapshot["_run"](tests, str(job["code"]), emit, workdir, native)
    os._exit(0)


def _snapshot() -> dict[str, Any]:
    snapshot = dict(globals())
    snapshot["__builtins__"] = dict(vars(builtins))
    # Fresh state the audit hook trusts, not the module's own (which the solution can reach).
    snapshot.update(WALKING=set(), PROTECTED=set(), TEST_LINES={})
    for name, value in list(snapshot.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == __name__:
            snapshot[name] = types.FunctionType(
                value.__code__, snapshot, value.__name__, value.__defaults__, value.__closure__
            )
    return snapshot


# The tests as compiled for a run: (test names, code or None when they do not parse, the
# syntax error's description, the tests' path, the modules they import).
CompiledTests = tuple[list[str], types.CodeType | None, str, str, list[str]]


def _compile(job: dict[str, Any], workdir: str) -> CompiledTests:
    source = str(job["tests"])
    tests_path = os.path.join(workdir, "tests.py")
    # The tests are not on disk (hidden tests stay hidden): tracebacks read their lines here.
    # (Not in linecache, which the solution can read.)
    TEST_LINES[tests_path] = source.splitlines()
    names, code, broken, imports = _precompiled(job) or parse_tests(source, tests_path)
    if code is None:
        return [], None, broken, tests_path, []
    only = job.get("only")
    if only is not None:
        # A trial runs only the tests it asks about (the ones a learner's attempt failed).
        wanted = {str(name) for name in only}
        names = [name for name in names if name in wanted]
    return names, bind_tests(code, tests_path), "", tests_path, imports


def _precompiled(job: dict[str, Any]) -> tuple[list[str], types.CodeType, str, list[str]] | None:
    """The tests as the server parsed and compiled them (`precompile`), when it sent them for
    this interpreter's bytecode; a forked run spends more on compiling than on most tests."""
    compiled = job.get("compiled")
    if not isinstance(compiled, dict) or compiled.get("magic") != BYTECODE:
        return None
    code = marshal.loads(binascii.a2b_base64(str(compiled["code"])))
    imports = [str(name) for name in compiled.get("imports", ())]
    return [str(name) for name in compiled["names"]], code, "", imports


def precompile(source: str) -> dict[str, Any] | None:
    """What the server sends with a job so that the run need not parse and compile the tests:
    their names and code (marshalled, base64) for interpreters of this bytecode version. None
    for tests that do not parse: the run reports their syntax error itself."""
    names, code, _, imports = parse_tests(source, "tests.py")
    if code is None:
        return None
    encoded = binascii.b2a_base64(marshal.dumps(code), newline=False).decode()
    return {"magic": BYTECODE, "names": names, "code": encoded, "imports": imports}


def _process(workdir: str) -> None:
    # Fresh line-buffered streams: prints made just before a timeout still reach the learner.
    sys.stdout = _text_stream(1, "w")
    sys.stderr = _text_stream(2, "w")
    sys.stdin = _text_stream(0, "r")
    sys.argv = ["solution.py"]
    sys.dont_write_bytecode = True
    sys.path[:] = [workdir] + [p for p in sys.path if p.startswith("/usr/")]


def _run(tests: CompiledTests, solution: str, emit: Emit, workdir: str, native: bool) -> NoReturn:
    _process(workdir)
    names, code, broken, tests_path, imports = tests
    if code is None:
        # A broken exercise, not a broken submission: still a clean error for the author.
        emit({"t": "plan", "tests": ["tests.py"]})
        emit({"t": "test", "name": "tests.py", "status": "error", "message": broken})
        finish(emit, "import")
    emit({"t": "plan", "tests": names})

    failure: BaseException | None = None
    namespace: dict[str, Any] = {}
    module = types.ModuleType("tests")
    module.__file__ = tests_path
    namespace = module.__dict__
    # Builtins of their own: the solution replacing builtins.all or .len does not reach them.
    namespace["__builtins__"] = dict(vars(builtins))
    library = library_state(imports)
    guard = seal(native=native)
    try:
        guard[0] = True  # from here on, the learner's code may be running
        load_solution(solution, os.path.join(workdir, "solution.py"))
        restore_library(library)
        exec(code, namespace)
    except BaseException as exc:  # noqa: B036 - SystemExit at import is the submission's error too
        failure = exc
    if failure is not None:
        message = describe(failure)
        for name in names:
            emit(outcome(name, "error", message, failure))
        finish(emit, "import")

    # Taken now: the solution can reach the tests' namespace later (a class of the tests, a
    # callback), but each test runs with globals of its own, copied from this snapshot.
    snapshot = dict(namespace)
    functions = [(name, namespace.get(name)) for name in names]
    for name, function in functions:
        if not callable(function):
            message = f"{name} is not a function"
            emit({"t": "test", "name": name, "status": "error", "message": message})
            continue
        restore_library(library)
        emit(run_one(name, isolated(function, namespace, snapshot)))
    finish(emit, "tests")


class _Deadline(BaseException):
    """A trial's program ran past its time."""


def claim_signals(*, trial: bool) -> list[bool]:
    """Set the only signal handlers a run will have, before its filter goes on; returns the
    switch of a trial's alarm (raising `_Deadline` while it is on).

    A Python signal handler is called with the frame that was running, which can be the
    harness's own: from there `f_back` and `f_locals` reach `emit`. So the Python run filter
    refuses to install handlers (rt_sigaction with a new action), and everything a run needs is
    installed here. `signal.signal` then refuses with a ValueError that says why, as it does
    where signals cannot be handled at all: asyncio.run() carries on without its own SIGINT
    handler, and Python's stays (KeyboardInterrupt, `_thread.interrupt_main`).
    """
    armed = [False]

    def on_alarm(
        signum: int, frame: Any, armed: list[bool] = armed, deadline: type = _Deadline
    ) -> None:
        if armed[0]:
            armed[0] = False
            raise deadline

    if trial:
        signal.signal(signal.SIGALRM, on_alarm)
    signal.signal = private(_no_signal_handlers)
    return armed


def _no_signal_handlers(signalnum: Any, handler: Any, _error: type = ValueError) -> NoReturn:
    raise _error("graded code may not install signal handlers")


def _trial(
    tests: CompiledTests,
    job: dict[str, Any],
    emit: Emit,
    workdir: str,
    native: bool,
    armed: list[bool],
) -> NoReturn:
    """Try each program in turn against the (selected) tests; one `case` record for each.

    The programs run one after another in this one locked-down process, as a graded
    submission does: each in a fresh `solution` module and a fresh tests namespace, both with
    builtins copied before the first program ran, and under a deadline of its own (an alarm,
    armed only while the program's code runs). One program could still change shared state a
    later one sees (a standard module, the alarm's handler); that can only make the trial's
    answer wrong, never reach beyond the run. With stop "any" the trial ends at the first
    program that passes a test (whose other tests are then not run), with "all" at the first
    that passes every test.
    """
    _process(workdir)
    names, code, broken, tests_path, imports = tests
    programs = [str(program) for program in job["programs"]]
    stop = str(job.get("stop", "never"))
    wall_s = float(job.get("case_wall_s", 2.0))
    pristine = dict(vars(builtins))
    library = library_state(imports)
    guard = seal(native=native)
    guard[0] = True  # from here on, the learner's code may be running
    for index, program in enumerate(programs):
        passed: list[str] = []
        status = "import"
        if code is not None:
            status, passed = _try_program(program, code, names, pristine, tests_path, workdir,
                                          wall_s, armed, library, first=stop == "any")  # fmt: skip
        emit({"t": "case", "index": index, "status": status, "plan": names, "passed": passed})
        if (stop == "any" and passed) or (
            stop == "all" and status == "tests" and names and len(passed) == len(names)
        ):
            break
    finish(emit, "trial")


def _try_program(
    program: str,
    code: types.CodeType,
    names: list[str],
    pristine: dict[str, Any],
    tests_path: str,
    workdir: str,
    wall_s: float,
    armed: list[bool],
    library: LibraryState,
    *,
    first: bool = False,
) -> tuple[str, list[str]]:
    """(how the program ended, the tests it passed); nothing is emitted while it runs.
    `first`: stop at the first test it passes (all the stop rule "any" needs to know)."""
    passed: list[str] = []
    status = "tests"
    armed[0] = True
    signal.setitimer(signal.ITIMER_REAL, wall_s)
    try:
        module = types.ModuleType("tests")
        module.__file__ = tests_path
        namespace = module.__dict__
        namespace["__builtins__"] = dict(pristine)
        try:
            load_solution(program, os.path.join(workdir, "solution.py"), dict(pristine))
            restore_library(library)
            exec(code, namespace)
        except _Deadline:
            raise
        except BaseException:  # noqa: B036 - a program that does not load passes nothing
            status = "import"
        if not armed[0]:  # the alarm went off, whatever the program made of it
            raise _Deadline
        snapshot = dict(namespace)
        for name in names if status == "tests" else ():
            function = namespace.get(name)
            if not callable(function):
                continue
            restore_library(library)
            result = run_one(name, isolated(function, namespace, snapshot))
            if not armed[0]:
                raise _Deadline
            if result["status"] == "passed":
                passed.append(name)
                if first:
                    break
    except _Deadline:
        status = "timeout"
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
    return status, passed


# What a module's state is made of, as taken before the solution loads: (owner, its namespace,
# the entries it had) for the modules and the objects of their classes they hold; (class,
# entries) for the classes they define; (function, defaults, keyword defaults) for their
# functions; the modules by the names `import` finds them under (sys.modules).
Namespaces = list[tuple[Any, dict[str, Any], dict[str, Any]]]
LibraryState = tuple[
    Namespaces,
    list[tuple[type, dict[str, Any]]],
    list[tuple[Any, Any, Any]],
    dict[str, types.ModuleType],
]
LIBRARY_EXCLUDED = frozenset(
    {"sys", "builtins", "solution", "__main__", "run_python", "zygote_main"}
)


def library_state(imports: list[str]) -> LibraryState:
    """The state of the modules the tests import, before the solution loads (they are imported
    here if they are not yet).

    The tests call library code in the solution's interpreter (`from math import prod`,
    `random.Random(2024)`, `inspect.isgenerator`): a solution that replaced `math.prod`, a
    method of `random.Random` or `types.GeneratorType` would decide what they check.
    `restore_library` puts back, before the tests load and before each test, the namespaces of
    those modules and of the modules they name (`inspect.types`), and the classes, functions'
    defaults and objects (`random._inst`) of the modules the tests import. Deeper than that,
    what it costs to restore grows with the whole standard library; see docs/sandbox.md. `sys`
    and `builtins` are left out: the tests have builtins of their own, and `sys` holds the
    run's own streams.
    """
    direct: list[types.ModuleType] = []
    for name in imports:
        with contextlib.suppress(Exception):  # a module that is not there: the tests say so
            module = importlib.import_module(name)
            if name not in LIBRARY_EXCLUDED and module not in direct:
                direct.append(module)
    modules = list(direct)
    for module in direct:
        for key, value in list(vars(module).items()):
            if key.startswith("__"):
                continue
            if not isinstance(value, types.ModuleType):
                value = sys.modules.get(str(getattr(value, "__module__", "") or ""))
            reached = getattr(value, "__name__", None)
            if value is not None and reached not in LIBRARY_EXCLUDED and value not in modules:
                modules.append(value)
    namespaces: Namespaces = [(module, vars(module), dict(vars(module))) for module in modules]
    classes: list[tuple[type, dict[str, Any]]] = []
    functions: list[tuple[Any, Any, Any]] = []
    for module in direct:
        for value in list(vars(module).values()):
            _library_value(value, module.__name__, classes, namespaces, functions)
    names = {
        module.__name__: module for module in modules if sys.modules.get(module.__name__) is module
    }
    return namespaces, classes, functions, names


def _library_value(
    value: Any,
    module: str,
    classes: list[tuple[type, dict[str, Any]]],
    namespaces: Namespaces,
    functions: list[tuple[Any, Any, Any]],
) -> None:
    if isinstance(value, types.FunctionType):
        functions.append((value, value.__defaults__, value.__kwdefaults__))
    elif isinstance(value, type):
        # Classes written in Python (mutable); a C type's methods cannot be replaced.
        if value.__module__ == module and not value.__flags__ & IMMUTABLE_TYPE:
            classes.append((value, dict(vars(value))))
            for attribute in list(vars(value).values()):
                if isinstance(attribute, types.FunctionType):
                    functions.append((attribute, attribute.__defaults__, attribute.__kwdefaults__))
    elif type(value).__module__ == module and type(getattr(value, "__dict__", None)) is dict:
        # An object the module keeps (random's `_inst`, whose methods are random.randint...).
        namespaces.append((value, value.__dict__, dict(value.__dict__)))


IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE


def restore_library(
    state: LibraryState,
    _type: Any = type,
    _str: Any = str,
    _module: Any = types.ModuleType,
    _setattr: Any = type.__setattr__,
    _delattr: Any = type.__delattr__,
    _get: Any = object.__getattribute__,
    _set: Any = object.__setattr__,
    _list: Any = list,
    _len: Any = len,
    _modules: Any = sys.modules,
) -> None:
    """Put back what the solution changed in the state taken by `library_state`.

    Only identities are compared (no method of a value of the solution's runs), and a namespace
    holding a key that is not exactly a `str` is rebuilt instead (its hash and `==` would be
    the solution's). Entries added since are removed, except modules (a submodule imported
    since is bound on its package; a module is no function or class to call in a built-in's
    place).
    """
    namespaces, classes, functions, names = state
    missing = object()
    # `import math` in the tests finds what sys.modules holds (the interpreter's own dict,
    # whatever the solution binds to sys.modules).
    for key in _list(_modules):
        if _type(key) is not _str:
            kept = {key: value for key, value in _list(_modules.items()) if _type(key) is _str}
            _modules.clear()
            _modules.update(kept)
            break
    for key, module in names.items():
        if _modules.get(key, missing) is not module:
            _modules[key] = module
    for cls, entries in classes:
        current = cls.__dict__
        for key in _list(current):
            if key not in entries:
                _delattr(cls, key)
        for key, value in entries.items():
            if current.get(key, missing) is not value:
                _setattr(cls, key, value)
    for owner, namespace, entries in namespaces:
        if _type(owner) is not _module and _get(owner, "__dict__") is not namespace:
            _set(owner, "__dict__", namespace)  # an object given a new __dict__ gets its own back
        foreign = False
        for key in _list(namespace):
            if _type(key) is not _str:
                foreign = True
                break
        if foreign:
            namespace.clear()
            namespace.update(entries)
            continue
        for key, value in entries.items():
            if namespace.get(key, missing) is not value:
                namespace[key] = value
        if _len(namespace) != _len(entries):
            for key in _list(namespace):
                if key not in entries and _type(namespace[key]) is not _module:
                    del namespace[key]
    for function, defaults, kwdefaults in functions:
        if function.__defaults__ is not defaults:
            function.__defaults__ = defaults
        if function.__kwdefaults__ is not kwdefaults:
            function.__kwdefaults__ = kwdefaults


def isolated(function: Any, namespace: dict[str, Any], snapshot: dict[str, Any]) -> Any:
    """The test function, looking up its globals (and builtins) in a fresh copy of snapshot.

    Only functions defined inside the test itself share that copy; the tests' helpers and
    classes keep the module's namespace, so what the solution changes there does not change
    what the test calls.
    """
    if type(function) is not types.FunctionType or function.__globals__ is not namespace:
        return function
    globals_ = dict(snapshot)
    globals_["__builtins__"] = dict(snapshot["__builtins__"])
    copy = types.FunctionType(
        function.__code__, globals_, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


# Audit events that would hand the learner's code the harness's frames, objects or memory.
DENIED_EVENTS = frozenset(
    {
        "sys._getframe",
        "sys._current_frames",
        "sys._current_exceptions",
        "sys.settrace",
        "sys.setprofile",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "code.__new__",
        "marshal.loads",
        "marshal.load",
        # A hook of the learner's would be called with the harness's own events: the tests'
        # code as it is run ("exec"), the tracebacks the harness reads and their frames.
        "sys.addaudithook",
    }
)
# Extension modules CPython builds for its own tests and experiments (Debian ships them with
# the standard library): C helpers that reach code objects, threads and raw memory with no audit
# event of their own, and sub-interpreters, which run code under none of this one's hooks.
UNSAFE_EXTENSIONS = ("_test", "_xx", "xx", "_ctypes_test")
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
FIXED_ATTRIBUTES = frozenset({"__defaults__", "__kwdefaults__"})  # of the harness's functions
PROTECTED: set[int] = set()  # ids of the harness functions bound into the tests' code
TEST_LINES: dict[str, list[str]] = {}  # the tests' source, for messages, out of linecache
WALKING: set[int] = set()  # ids of the tracebacks the harness is reading right now
HARNESS_MODULES = ("run_python", "zygote_main", "__main__")
# The bytecode version of this interpreter: tests compiled by the server run here only if it
# is the server's too.
BYTECODE = importlib.util.MAGIC_NUMBER.hex()
COMPARE = "\x00koan:compare"
EXPLAIN = "\x00koan:explain"


def _under_proc(
    path: Any, _type: Any = type, _str: Any = str, _bytes: Any = bytes, _int: Any = int
) -> bool:
    """Whether a path names something under /proc (a run's own memory is /proc/self/mem).

    Only where /proc is there at all (below NAMESPACES); symlinks to it are refused as well.
    """
    kind = _type(path)
    if kind is _int:
        return False
    text = path.decode("utf-8", "replace") if kind is _bytes else _str(path)
    return (
        text.startswith(("/proc/", "proc/"))
        or "/proc/" in text
        or text in ("/proc", "proc")
        or text.endswith("/proc")
    )


def seal(*, native: bool = False) -> list[bool]:
    """Put the harness out of the learner's reach; returns the switch of the audit guard.

    While guard[0] is true every denied event raises. The hook cannot be listed or removed from
    Python, and its switch is only in this frame and the hook's closure.
    """
    guard = [False]

    def hook(
        event: str,
        args: tuple[Any, ...],
        guard: list[bool] = guard,
        denied: frozenset[str] = DENIED_EVENTS,
        frames: frozenset[str] = FRAME_ATTRIBUTES,
        fixed: frozenset[str] = FIXED_ATTRIBUTES,
        protected: set[int] = PROTECTED,
        _id: Any = id,
        native: bool = native,
        refused: type[Exception] = ValueError,
        denied_file: type[Exception] = PermissionError,
        walking: set[int] = WALKING,
        _proc: Callable[[Any], bool] = _under_proc,
        unsafe: tuple[str, ...] = UNSAFE_EXTENSIONS,
        _str: Any = str,
        no_module: type[Exception] = ModuleNotFoundError,
    ) -> None:
        if not guard[0]:
            return
        # The last part of the name: an extension's init function is named after it, so a
        # module loaded under a package's name ("x._testcapi") is still that extension.
        if event == "import" and _str(args[0]).rpartition(".")[2].startswith(unsafe):
            raise no_module(f"No module named {args[0]!r} in the grader")
        if event == "os.symlink" or (event in ("open", "os.chdir") and _proc(args[0])):
            raise denied_file(13, "Permission denied (graded code may not use /proc or symlinks)")
        if (
            event in denied
            or (event.startswith("ctypes.") and not native)
            or event == "_thread.start_new_thread"
            or (event == "object.__getattr__" and args[1] in frames and _id(args[0]) not in walking)
            or (event == "object.__setattr__" and args[1] == "__code__")
            or (event == "object.__setattr__" and args[1] in fixed and _id(args[0]) in protected)
        ):
            # A ValueError, as for a stack not that deep: the standard library's own uses of
            # sys._getframe (namedtuple, enum, typing) expect one and carry on without it.
            raise refused(f"{event} is not available to graded code")

    sys.addaudithook(hook)
    _hide_garbage()
    # Modules imported from now on compile from source: loading bytecode is refused.
    sys.pycache_prefix = "/nonexistent"
    main = types.ModuleType("__main__")
    for name in HARNESS_MODULES:
        sys.modules.pop(name, None)
    sys.modules["__main__"] = main
    return guard


def _refused(what: Any, _error: type[Exception] = ImportError) -> NoReturn:
    raise _error("built-in modules cannot be loaded again in the grader")


def _hide_garbage() -> None:
    """Take the garbage collector's `garbage` list out of the learner's reach.

    With gc.DEBUG_SAVEALL every unreachable cycle goes to that list instead of being freed,
    frames included (a traceback the learner kept in a cycle holds its own frame, whose
    `f_back` leads to the harness's). `gc.garbage` becomes a list of its own; the interpreter's
    list is only put back on a gc module by loading the built-in module again, which is refused
    (every built-in module is loaded by now, so imports do not need to).
    """
    import _imp
    import gc

    for name in sys.builtin_module_names:
        if name not in sys.modules:
            importlib.import_module(name)
    gc.set_debug(0)
    del gc.garbage[:]
    gc.garbage = []
    _imp.create_builtin = private(_refused)
    _imp.exec_builtin = private(_refused)


def parse_tests(source: str, path: str) -> tuple[list[str], types.CodeType | None, str, list[str]]:
    """The tests' names and code, every comparison strict, and the modules they import; the
    harness's functions are still placeholders (`bind_tests`). No code, and the syntax error's
    description, when the tests do not parse."""
    import warnings

    try:
        tree = ast.parse(source, path)
    except SyntaxError as exc:
        return [], None, describe(exc), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": the placeholders
        code = compile(rewrite_asserts(tree, source), path, "exec", dont_inherit=True)
    return discover(tree), code, "", imported_modules(tree)


def imported_modules(tree: ast.Module) -> list[str]:
    """The absolute module names the tests import anywhere (`import a.b`, `from a import b`),
    with their packages, except the solution."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        else:
            continue
        for name in found:
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                module = ".".join(parts[:end])
                if parts[0] != "solution" and module not in names:
                    names.append(module)
    return names


def bind_tests(code: types.CodeType, path: str) -> types.CodeType:
    """The tests' code bound to the harness's own functions, and to their path in this run."""
    constants = {COMPARE: private(strict_compare), EXPLAIN: private(explain)}
    PROTECTED.update(id(function) for function in constants.values())
    return bind_constants(code, constants, path)


def bind_constants(code: types.CodeType, constants: dict[str, Any], path: str) -> types.CodeType:
    """Replace the placeholder string constants, in this code and all code nested in it, and
    name `path` as their file."""
    replaced = []
    for value in code.co_consts:
        if isinstance(value, types.CodeType):
            value = bind_constants(value, constants, path)
        elif type(value) is str and value in constants:
            value = constants[value]
        replaced.append(value)
    return code.replace(co_consts=tuple(replaced), co_filename=path)


def private(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function with globals of its own (no builtins): its defaults are all it uses."""
    return types.FunctionType(
        function.__code__, {"__builtins__": {}}, function.__name__, function.__defaults__
    )


def _plain_scalars() -> tuple[type, ...]:
    import datetime
    import decimal

    # Built-in and C-implemented value types: their comparisons cannot be patched.
    return (type(None), bool, int, float, complex, str, bytes, decimal.Decimal) + (
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
    )


def strict_compare(
    left: Any,
    op: str,
    right: Any,
    _scalars: tuple[type, ...] = _plain_scalars(),
    _type: Any = type,
    _isinstance: Any = isinstance,
    _list: Any = list,
    _tuple: Any = tuple,
    _dict: Any = dict,
    _set: Any = set,
    _frozenset: Any = frozenset,
    _bases: tuple[tuple[type, Any], ...] = (
        (int, int.__int__),
        (float, float.__float__),
        (complex, complex.__complex__),
        (str, str.__str__),
        (bytes, bytes.__bytes__),
    ),
    _issubclass: Any = issubclass,
    _fail: Any = ValueError,
    _type_error: Any = TypeError,
) -> bool:
    """`left <op> right` where a learner's object never equals (or orders against) plain data.

    Plain data (built-in values and containers of them) is compared as exactly the built-in
    types, so no method of the learner's takes part; a subclass of a built-in type counts as
    its built-in value (a namedtuple as a tuple, a Counter as a dict). Objects on both sides
    compare as Python would, by their own methods. Uses nothing but its defaults, so the
    learner's changes to modules and builtins do not reach it.
    """

    def plain(value: Any, depth: int) -> Any:
        kind = _type(value)
        # By identity: `kind in _scalars` would ask a metaclass's __eq__ of the learner's.
        for scalar in _scalars:
            if kind is scalar:
                return value
        if depth > 200:
            raise _fail("too deep")
        if kind is _list:
            return [plain(item, depth + 1) for item in value]
        if kind is _tuple or kind is _set or kind is _frozenset:
            return kind([plain(item, depth + 1) for item in value])
        if kind is _dict:
            return {plain(k, depth + 1): plain(v, depth + 1) for k, v in value.items()}
        # The built-in type's own conversion: `str(value)` would call a __str__ of the
        # subclass, which may return another instance of it (with an `__eq__` that says yes).
        # By the real type, not `isinstance` (which believes a `__class__` property).
        for base, convert in _bases:
            if _issubclass(kind, base):
                return convert(value)
        for base in (_list, _tuple, _dict, _set, _frozenset):
            if _isinstance(value, base):
                return plain(base(value), depth + 1)
        raise _fail("not plain data")

    if op in ("in", "not in"):
        try:
            container = plain(right, 0)
        except _fail:
            found = left in right  # the learner's own container decides
        else:
            try:
                found = plain(left, 0) in container
            except _fail:
                found = False
        return found if op == "in" else not found
    try:
        a, left_plain = plain(left, 0), True
    except _fail:
        a, left_plain = left, False
    try:
        b, right_plain = plain(right, 0), True
    except _fail:
        b, right_plain = right, False
    if left_plain != right_plain:
        if op == "==":
            return False
        if op == "!=":
            return True
        raise _type_error(
            f"'{op}' between {_type(left).__name__} and {_type(right).__name__} is not supported"
        )
    if op == "==":
        return a == b  # type: ignore[no-any-return]
    if op == "!=":
        return a != b  # type: ignore[no-any-return]
    if op == "<":
        return a < b  # type: ignore[no-any-return]
    if op == "<=":
        return a <= b  # type: ignore[no-any-return]
    if op == ">":
        return a > b  # type: ignore[no-any-return]
    return a >= b  # type: ignore[no-any-return]


def _text_stream(fd: int, mode: str) -> Any:
    return open(fd, mode, encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)


def load_solution(
    source: str, path: str, builtins_: dict[str, Any] | None = None
) -> types.ModuleType:
    """Import solution.py as `solution` from the source in hand (no path search needed).

    The file is on disk too, so tracebacks, linecache and inspect find its lines (except in a
    trial, whose programs are not written out and get `builtins_`, a copy of their own).
    """
    module = types.ModuleType("solution")
    module.__file__ = path
    if builtins_ is not None:
        module.__dict__["__builtins__"] = builtins_
    sys.modules["solution"] = module
    try:
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        del sys.modules["solution"]
        raise
    return module


def finish(emit: Emit, phase: str, _exit: Callable[[int], NoReturn] = os._exit) -> NoReturn:
    """Flush the learner's output, send the end record and leave (skipping atexit and threads)."""
    for stream in (sys.stdout, sys.stderr):
        # The learner may have closed or replaced their own streams.
        with contextlib.suppress(BaseException):
            stream.flush()
    emit({"t": "end", "phase": phase})
    _exit(0)


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
            drive(result)
    except AssertionError as exc:
        return outcome(name, "failed", assertion_message(exc), exc)
    except BaseException as exc:  # noqa: B036 - sys.exit() in a test is an error, not an exit
        return outcome(name, "error", describe(exc), exc)
    return {"t": "test", "name": name, "status": "passed", "message": ""}


def drive(coroutine: Any) -> Any:
    """Run an async test to its end without an event loop.

    asyncio reads coroutines' frames, which graded code may not; so only awaits that need no
    loop work here (other coroutines, `asyncio.sleep(0)`); one that does is an error.
    """
    try:
        while True:
            if coroutine.send(None) is not None:
                coroutine.close()
                raise RuntimeError("async tests cannot wait on an event loop in the grader")
    except StopIteration as stop:
        return stop.value


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


ALL_SIGNALS = frozenset(signal.valid_signals())
Entry = tuple[str, int]  # (file name, line number) of one traceback entry


def tb_entries(
    exc: BaseException,
    _type: Any = type,
    _traceback: Any = types.TracebackType,
    _base: Any = BaseException,
    _sigmask: Any = signal.pthread_sigmask,
    _block: int = signal.SIG_BLOCK,
    _setmask: int = signal.SIG_SETMASK,
    _all: Any = ALL_SIGNALS,
    _id: Any = id,
) -> list[Entry]:
    """The (file, line) of each entry of exc's traceback.

    Graded code may not read a traceback's frames; the harness may, for the tracebacks it is
    walking, and only here: signals are blocked (a handler of the learner's cannot run in
    the middle: one already pending runs first, at the call below, under the guard), threads
    cannot be started, and only C attribute reads of real traceback objects happen in between.
    """
    try:
        tb = exc.__traceback__
    except _base:
        return []
    chain: list[types.TracebackType] = []
    while _type(tb) is _traceback:
        assert tb is not None
        chain.append(tb)
        tb = tb.tb_next
    entries: list[Entry] = []
    previous = _sigmask(_block, _all)
    try:
        _settle()  # a pending signal handler runs here, with frames still refused
        WALKING.update(_id(tb) for tb in chain)
        for tb in chain:
            entries.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
    finally:
        WALKING.clear()
        _sigmask(_setmask, previous)
    return entries


def _settle() -> None:
    """A call, so the interpreter runs pending signal handlers."""


def source_line(entry: Entry) -> str:
    """A line of the tests (kept here) or of another file (through linecache)."""
    lines = TEST_LINES.get(str(entry[0]))
    if lines is None:
        return linecache.getline(str(entry[0]), int(entry[1]))
    index = int(entry[1]) - 1
    return lines[index] if 0 <= index < len(lines) else ""


def learner_frame(exc: BaseException) -> Entry | None:
    """The innermost traceback entry that is in solution.py or tests.py."""
    found = None
    for entry in tb_entries(exc):
        if os.path.basename(str(entry[0])) in LEARNER_FILES:
            found = entry
    return found


def where(entry: Entry | None) -> str:
    """' (solution.py, line 3)' or nothing."""
    if entry is None:
        return ""
    return f" ({os.path.basename(str(entry[0]))}, line {entry[1]})"


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
    missing = missing_name(exc)
    if missing:
        return f"ImportError: solution.py does not define {missing}" + where(learner_frame(exc))
    detail = str(exc)
    head = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return head + where(learner_frame(exc))


def missing_name(exc: BaseException) -> str:
    """The name a `from solution import ...` asked for that solution.py does not define, or ''.

    Python's own message for it names the file by its path inside the sandbox."""
    if type(exc) is not ImportError or type(exc.name) is not str or exc.name != "solution":
        return ""
    prefix = "cannot import name '"
    detail = str(exc)
    if not detail.startswith(prefix):
        return ""
    name = detail[len(prefix) :].partition("'")[0]
    return name if name.isidentifier() else ""


def assertion_message(exc: AssertionError) -> str:
    """The assertion's own message, else the failing line."""
    if str(exc):
        return str(exc)
    entries = tb_entries(exc)
    entry = entries[-1] if entries else None
    line = source_line(entry) if entry is not None else ""
    if entry is not None and line.strip():
        return f"failed: {line.strip()}{where(entry)}"
    return "assertion failed" + where(learner_frame(exc))


def explain(
    source: str,
    left: object,
    op: str,
    right: object,
    _repr: Any = _repr.repr,
    _type: Any = type,
    _base: Any = BaseException,
) -> str:
    """Message for a rewritten bare `assert a <op> b`: the line and both values."""

    def show(value: object) -> str:
        try:
            return _repr(value)  # type: ignore[no-any-return]
        except _base as exc:
            return f"<{_type(value).__name__} whose repr raised {_type(exc).__name__}>"

    return f"assert {source}\n  left:  {show(left)}\n  right: {show(right)}"


def safe_repr(value: object) -> str:
    """A short repr that survives a learner's broken __repr__."""
    try:
        return _repr.repr(value)
    except BaseException as exc:  # noqa: B036 - their __repr__ may raise anything
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"


STRICT_OPS: dict[type, str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}


def _call(placeholder: str, args: list[ast.expr]) -> ast.Call:
    """A call of a harness function, bound into the code as a constant by bind_constants."""
    return ast.Call(func=ast.Constant(placeholder), args=args, keywords=[])


def _strict(left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.expr:
    return _call(COMPARE, [left, ast.Constant(STRICT_OPS[type(op)]), right])


class _AssertRewriter(ast.NodeTransformer):
    """Every single comparison becomes strict_compare; a bare `assert a <op> b` also explains.

    Each side is evaluated once, in order, exactly as the original comparison would be.
    Identity (`is`) and chained comparisons (`a < b < c`) are left as Python has them.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def visit_Compare(self, node: ast.Compare) -> Any:
        self.generic_visit(node)
        if len(node.ops) != 1 or type(node.ops[0]) not in STRICT_OPS:
            return node
        return ast.copy_location(_strict(node.left, node.ops[0], node.comparators[0]), node)

    def visit_Assert(self, node: ast.Assert) -> Any:
        test = node.test
        if (
            node.msg is not None
            or not isinstance(test, ast.Compare)
            or len(test.ops) != 1
            or type(test.ops[0]) not in STRICT_OPS
        ):
            return self.generic_visit(node)
        text = ast.get_source_segment(self.source, test) or ast.unparse(test)
        op = ast.unparse(ast.Compare(left=ast.Name("a"), ops=test.ops, comparators=[ast.Name("b")]))
        left = self.visit(test.left)
        right = self.visit(test.comparators[0])
        store = [ast.Name(f"_koan_{side}", ast.Store()) for side in ("left", "right")]
        load = [ast.Name(f"_koan_{side}", ast.Load()) for side in ("left", "right")]
        message = _call(
            EXPLAIN,
            [ast.Constant(" ".join(text.split())), load[0], ast.Constant(op[2:-2]), load[1]],
        )
        statements: list[ast.stmt] = [
            ast.Assign(targets=[store[0]], value=left),
            ast.Assign(targets=[store[1]], value=right),
            ast.If(
                test=ast.UnaryOp(ast.Not(), _strict(load[0], test.ops[0], load[1])),
                body=[
                    ast.Raise(
                        exc=ast.Call(
                            func=ast.Name("AssertionError", ast.Load()),
                            args=[message],
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
    """The tests with every single comparison strict (in place)."""
    rewritten: ast.Module = _AssertRewriter(source).visit(tree)
    return ast.fix_missing_locations(rewritten)
