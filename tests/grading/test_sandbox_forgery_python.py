"""Forged Python verdicts: a solution that tampers with the harness still does not pass.

Each attack comes with a wrong `add` (or none), so only a forged verdict could make it pass.
The tests are the usual two asserts; a few attacks bring tests that hand the solution a
callback, the way to reach the tests' own namespace.
"""

from __future__ import annotations

import pytest

from koan.grading.sandbox import Sandbox
from tests.grading.conftest import ADD_SOLUTION, ADD_TESTS, grade_python

WRONG = "\ndef add(a, b):\n    return 0\n"
PASS = '{"t": "test", "name": n, "status": "passed", "message": ""}'
# Given any frame, f_back and f_locals (which the audit hook cannot see) lead to the harness.
FRAME_WALKER = """
import os
def _forge(frame):
    while frame is not None:
        emit = frame.f_locals.get("emit")
        names = frame.f_locals.get("names")
        if callable(emit) and isinstance(names, list):
            for n in names:
                emit({"t": "test", "name": n, "status": "passed", "message": ""})
            emit({"t": "end", "phase": "tests"})
            os._exit(0)
        frame = frame.f_back
"""

ATTACKS = {
    "replace the harness's run_one through sys.modules": f"""
import sys
for name in ("run_python", "__main__", "zygote_main"):
    module = sys.modules.get(name)
    if module is not None:
        module.run_one = lambda n, fn: {PASS}
""",
    "patch the harness found through object.__subclasses__()": f"""
import sys
def _classes(cls):
    for sub in type.__subclasses__(cls):
        yield sub
        yield from _classes(sub)
for cls in list(_classes(object)):
    for value in list(vars(cls).values()):
        namespace = getattr(value, "__globals__", None)
        if not isinstance(namespace, dict):
            continue
        found = [namespace] + [vars(m) for m in namespace.values() if type(m) is type(sys)]
        for names in found:
            if "run_one" in names:
                names["run_one"] = lambda n, fn: {PASS}
                names["outcome"] = lambda n, *a: {PASS}
""",
    "open the guard through the harness's own state": f"""
import os, sys
def _classes(cls):
    for sub in type.__subclasses__(cls):
        yield sub
        yield from _classes(sub)
def add(a, b):
    try:
        raise ValueError
    except ValueError as error:
        tb = error.__traceback__
    for cls in list(_classes(object)):
        for value in list(vars(cls).values()):
            names = getattr(value, "__globals__", None)
            if isinstance(names, dict):
                for m in [names] + [vars(m) for m in names.values() if type(m) is type(sys)]:
                    if isinstance(m.get("WALKING"), set):
                        m["WALKING"].add(id(tb))
                        m["PROTECTED"].clear()
    try:
        frame = tb.tb_frame
    except Exception:
        return 0
    while frame is not None:
        emit = frame.f_locals.get("emit")
        if callable(emit):
            for n in ("test_small", "test_negative"):
                emit({PASS})
            emit({{"t": "end", "phase": "tests"}})
            os._exit(0)
        frame = frame.f_back
    return 0
""",
    "walk the frames to the harness's emit": f"""
import os, sys
def _forge():
    frame = sys._getframe()
    while frame is not None:
        emit = frame.f_locals.get("emit")
        if callable(emit):
            for n in ("test_small", "test_negative"):
                emit({PASS})
            emit({{"t": "end", "phase": "tests"}})
            os._exit(0)
        frame = frame.f_back
try:
    _forge()
except Exception:
    pass
""",
    "walk a traceback's frames to the harness's emit": f"""
import os
def add(a, b):
    try:
        raise ValueError
    except ValueError as error:
        frame = error.__traceback__.tb_frame
    while frame is not None:
        emit = frame.f_locals.get("emit")
        if callable(emit):
            for n in ("test_small", "test_negative"):
                emit({PASS})
            emit({{"t": "end", "phase": "tests"}})
            os._exit(0)
        frame = frame.f_back
    return 0
""",
    "find the harness's emit with the garbage collector": f"""
import gc, os
def add(a, b):
    for thing in gc.get_objects():
        if callable(thing) and getattr(thing, "__name__", "") == "emit":
            for n in ("test_small", "test_negative"):
                thing({PASS})
            thing({{"t": "end", "phase": "tests"}})
            os._exit(0)
    return 0
""",
    "trace the test and jump over the failing line": """
import sys
def tracer(frame, event, arg):
    if frame.f_code.co_filename.endswith("tests.py") and event == "line":
        try:
            frame.f_lineno = frame.f_lineno + 1
        except ValueError:
            pass
    return tracer
sys.settrace(tracer)
""",
    "walk frames from a thread while the harness reads a traceback": """
import sys, threading
def spy():
    while True:
        try:
            sys._getframe(1)
        except Exception:
            pass
threading.Thread(target=spy, daemon=True).start()
""",
    "read the nonce from memory with ctypes": """
import ctypes
def add(a, b):
    ctypes.string_at(id(a), 64)
    return 0
""",
    "make bytecode by hand": """
def add(a, b):
    code = (lambda: 0).__code__
    code.replace(co_code=code.co_code)
    return 0
""",
    "return an object equal to everything": """
class Anything:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = object.__hash__
def add(a, b):
    return Anything()
""",
    "return an int subclass equal to everything": """
class Sneaky(int):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = int.__hash__
def add(a, b):
    return Sneaky(0)
""",
    "return a str subclass whose __str__ gives another one": """
class Liar(str):
    __hash__ = str.__hash__

    def __eq__(self, other):
        return True

    def __str__(self):
        return Liar("x")

def add(a, b):
    return Liar("0")
""",
    "return an object whose metaclass equals every built-in type": """
class Meta(type):
    __hash__ = type.__hash__

    def __eq__(cls, other):
        return True

class Yes(metaclass=Meta):
    __hash__ = object.__hash__

    def __eq__(self, other):
        return True

def add(a, b):
    return Yes()
""",
    "replace AssertionError in builtins": """
import builtins
class Never(Exception):
    pass
builtins.AssertionError = Never
""",
    "replace all, isinstance and len in builtins": """
import builtins
builtins.all = lambda *a, **k: True
builtins.isinstance = lambda *a, **k: True
builtins.len = lambda *a, **k: 2
""",
    "forge records through the json package": """
import json, json.encoder
class Fake(json.JSONEncoder):
    def encode(self, o):
        if isinstance(o, dict) and o.get("t") == "test":
            o = dict(o, status="passed", message="")
        return super().encode(o)
json._default_encoder = Fake()
json.dumps = lambda o, **k: Fake().encode(o)
""",
    "monkeypatch unittest's assertions": """
import unittest
for name in dir(unittest.TestCase):
    if name.startswith("assert"):
        setattr(unittest.TestCase, name, lambda *a, **k: None)
""",
    "exit with status 0 at import": "import os\nos._exit(0)\n",
    "exit with status 0 from the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "sys.exit(0) from the function": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "kill itself from the function": (
        "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    ),
    "print fake result lines": f"""
for n in ("test_small", "test_negative"):
    print("x" * 32, {PASS})
""",
    "walk from the frame a signal handler is given to the harness's emit": f"""{FRAME_WALKER}
import signal
signal.signal(signal.SIGUSR1, lambda signum, frame: _forge(frame))
def add(a, b):
    os.kill(os.getpid(), signal.SIGUSR1)
    return 0
""",
    "walk a frame the garbage collector saved to the harness's emit": f"""{FRAME_WALKER}
import gc, importlib, importlib.util, sys, types, _imp
def _garbage():
    lists = [gc.garbage]
    for make in (
        lambda: importlib.util.module_from_spec(importlib.util.find_spec("gc")),
        lambda: (sys.modules.pop("gc", None), importlib.import_module("gc"))[1],
        lambda: gc,
    ):
        try:
            module = make()
            _imp.exec_builtin(module)
        except Exception:
            continue
        lists.append(getattr(module, "garbage", []))
    return lists
def _keep_a_frame():
    try:
        raise ValueError
    except ValueError as error:
        cycle = [error]
        cycle.append(cycle)
def add(a, b):
    gc.set_debug(gc.DEBUG_SAVEALL)
    _keep_a_frame()
    gc.collect()
    for garbage in _garbage():
        for thing in garbage:
            if type(thing) is types.FrameType:
                _forge(thing)
    return 0
""",
    "walk the tracebacks the harness reads from an audit hook of its own": f"""{FRAME_WALKER}
import sys
_busy = []
def _hook(event, args):
    if _busy or event != "object.__getattr__" or args[1] != "tb_frame":
        return
    _busy.append(1)
    try:
        _forge(args[0].tb_frame)
    except Exception:
        pass
    _busy.clear()
sys.addaudithook(_hook)
def add(a, b):
    raise ValueError("wrong")
""",
}

CALLBACK_TESTS = """\
from solution import apply


def helper_check(value):
    assert value == 3, "the callback's result"


def increment(x):
    return x + 1


class Box:
    def __init__(self, value):
        self.value = value


def test_apply():
    result = apply(increment, 1)
    helper_check(result)


def test_apply_lambda():
    helper_check(apply(lambda x: x + 1, 1))
"""
CALLBACK_ATTACKS = {
    "replace the test's code through a callback's globals": """
def apply(f, x):
    tests = f.__globals__
    try:
        tests["test_apply"].__code__ = (lambda: None).__code__
    except Exception:
        pass
    return 0
""",
    "replace the tests' helper through a callback's globals": """
def apply(f, x):
    f.__globals__["helper_check"] = lambda value: None
    f.__globals__["__builtins__"]["AssertionError"] = KeyError
    return 0
""",
    "replace the tests' helper through a class of the tests": """
def _classes(cls):
    for sub in type.__subclasses__(cls):
        yield sub
        yield from _classes(sub)
def apply(f, x):
    for cls in list(_classes(object)):
        if cls.__name__ == "Box":
            cls.__init__.__globals__["helper_check"] = lambda value: None
    return 0
""",
    "swap the comparison bound into the tests' code": """
def apply(f, x):
    for const in f.__globals__["helper_check"].__code__.co_consts:
        if callable(const):
            try:
                const.__defaults__ = (None,) * len(const.__defaults__ or ())
            except Exception:
                pass
    return 0
""",
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
async def test_a_forged_verdict_does_not_pass(sandbox: Sandbox, attack: str) -> None:
    body = ATTACKS[attack]
    code = body if "def add" in body or body[-9:] == "_exit(0)\n" else body + WRONG

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status != "passed", report
    assert report.passed == 0, report


@pytest.mark.parametrize("attack", list(CALLBACK_ATTACKS), ids=list(CALLBACK_ATTACKS))
async def test_a_forged_verdict_through_a_callback_does_not_pass(
    sandbox: Sandbox, attack: str
) -> None:
    report = await grade_python(sandbox, CALLBACK_ATTACKS[attack], CALLBACK_TESTS)

    assert report.status != "passed", report


async def test_a_correct_solution_still_passes_with_the_guard(sandbox: Sandbox) -> None:
    code = "import collections\nPoint = collections.namedtuple('Point', 'x y')\n" + ADD_SOLUTION
    tests = ADD_TESTS + (
        "\n\ndef test_values_of_subclasses_count_as_their_built_in_value():\n"
        "    from collections import Counter\n"
        "    from solution import Point\n"
        "    assert Point(1, 2) == (1, 2)\n"
        "    assert Counter('aab') == {'a': 2, 'b': 1}\n"
        "    assert 2 in [1, 2, 3] and 'b' not in 'ac'\n"
    )

    report = await grade_python(sandbox, code, tests)

    assert report.status == "passed", report


async def test_the_tests_stay_hidden_from_the_solution(sandbox: Sandbox) -> None:
    code = (
        "import os, sys\n"
        "print(sorted(os.listdir('.')))\n"
        "print('tests' in sys.modules)\n"
        "import linecache\n"
        "print(any('test_small' in str(e) for e in linecache.cache.values()))\n" + ADD_SOLUTION
    )

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "passed", report
    assert report.stdout == "['solution.py']\nFalse\nFalse\n"


async def test_an_audit_hook_of_the_solutions_sees_nothing_of_the_tests(sandbox: Sandbox) -> None:
    spy = """
import sys
def _hook(event, args):
    if event == "exec":
        code = args[0]
        print(code.co_name, [c.co_consts for c in code.co_consts if hasattr(c, "co_consts")])
sys.addaudithook(_hook)
"""
    code = spy + ADD_SOLUTION

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "passed", report
    assert "test_small" not in report.stdout
    assert report.stdout == ""


async def test_a_solution_can_still_use_asyncio_run_but_not_set_signal_handlers(
    sandbox: Sandbox,
) -> None:
    code = """
import _signal, asyncio, signal
try:
    signal.signal(signal.SIGALRM, lambda *a: None)
except ValueError as error:
    print("refused:", error)
try:
    _signal.signal(signal.SIGALRM, lambda *a: None)
except OSError as error:
    print("refused:", error.errno)
async def _add(a, b):
    await asyncio.sleep(0)
    return a + b
def add(a, b):
    try:  # Python's own SIGINT handler stays
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass
    return asyncio.run(_add(a, b))
"""

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "passed", report
    assert report.stdout == "refused: graded code may not install signal handlers\nrefused: 1\n"


# Tests that call library code, as the bank's do: a function imported from a module, a seeded
# random.Random, the module-level random functions, a library function and what it calls.
LIBRARY_TESTS = """\
import random
import statistics
from math import prod

from solution import add


def test_product():
    assert prod([add(2, 3), 2]) == 10


def test_seeded_cases():
    rng = random.Random(7)
    for _ in range(20):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        assert add(a, b) == a + b


def test_module_random():
    a, b = random.randint(1, 9), random.randint(1, 9)
    assert add(a, b) == a + b


def test_mean():
    assert statistics.fmean([add(1, 2), add(4, 5)]) == 6
"""

LIBRARY_ATTACKS = {
    "replace a function the tests import from a module": """
import math
math.prod = lambda *args, **kwargs: 10
""",
    "replace a method of a library class": """
import random
random.Random.randint = lambda self, a, b: 0
""",
    "replace a method on the module's own instance": """
import random
random._inst.randrange = lambda *args, **kwargs: 0
random.randint = lambda a, b: 0
""",
    "give the module's instance a new __dict__": """
import random
random._inst.__dict__ = {"randrange": lambda *args, **kwargs: 0}
""",
    "put another module in sys.modules": """
import sys, types
fake = types.ModuleType("math")
fake.prod = lambda *args, **kwargs: 10
sys.modules["math"] = fake
""",
    "replace a name the library function looks up": """
import statistics
statistics.fsum = lambda *args: 12.0
""",
    "hide the replacement behind a key that is not a string": """
import math

class Key(str):
    def __hash__(self):
        math.prod = lambda *args, **kwargs: 10
        return str.__hash__(self)

vars(math)[Key("x")] = 1
math.prod = lambda *args, **kwargs: 10
""",
    "make the replacement from inside the call": """
import math, random

def add(a, b):
    math.prod = lambda *args, **kwargs: 10
    random.Random.randint = lambda self, a, b: 0
    random.randint = lambda a, b: 0
    return 0
""",
}


@pytest.mark.parametrize("attack", list(LIBRARY_ATTACKS), ids=list(LIBRARY_ATTACKS))
async def test_replacing_the_library_the_tests_call_does_not_pass(
    sandbox: Sandbox, attack: str
) -> None:
    body = LIBRARY_ATTACKS[attack]
    code = body if "def add" in body else body + WRONG

    report = await grade_python(sandbox, code, LIBRARY_TESTS)

    assert report.passed == 0, report
    assert (await grade_python(sandbox, ADD_SOLUTION, LIBRARY_TESTS)).status == "passed"
