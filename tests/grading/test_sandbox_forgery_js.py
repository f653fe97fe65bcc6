"""Forged JavaScript verdicts: a solution that tampers with the harness still does not pass.

Each attack comes with a wrong `add`, so only a forged verdict could make it pass.
"""

from __future__ import annotations

import pytest

from koan.grading.sandbox import Sandbox
from tests.grading.test_sandbox_javascript import SOLUTION, grade_js

WRONG = "module.exports = { add: () => 0 };\n"

ATTACKS = {
    "wrap the global test() so it runs nothing": """
const real = globalThis.test;
try { globalThis.test = (name, fn) => real(name, () => {}); } catch {}
try { Object.defineProperty(globalThis, 'test', { value: (n) => real(n, () => {}) }); } catch {}
""",
    "replace every node:assert function with a no-op": """
for (const id of ['node:assert', 'assert', 'node:assert/strict', 'assert/strict']) {
  const a = require(id);
  for (const key of Object.keys(a)) { try { a[key] = () => {}; } catch {} }
  try { a.strict.strictEqual = () => {}; } catch {}
  try { Object.setPrototypeOf(a, null); } catch {}
}
""",
    "hand the tests a fake assert through the module loader": """
const Module = require('node:module');
const load = Module._load;
const noop = new Proxy(function () {}, { get: () => noop, apply: () => undefined });
Module._load = function (request, ...rest) {
  if (String(request).includes('assert')) return noop;
  return load.call(this, request, ...rest);
};
""",
    "shadow test with a global lexical binding": """
globalThis.realTest = globalThis.test;
require('node:vm').runInThisContext('let test = (n, f) => realTest(n, () => {});');
""",
    "plant toJSON and then on Object.prototype": """
Object.prototype.toJSON = function () { return { t: 'test', status: 'passed', message: '' }; };
Object.defineProperty(Object.prototype, 'then', {
  configurable: true,
  get() { return undefined; },
});
""",
    "break Array and Promise built-ins the harness might use": """
Array.prototype.push = function () { return 0; };
Array.prototype.includes = () => false;
Array.prototype.map = () => [];
const then = Promise.prototype.then;
Promise.prototype.then = function (ok) { return then.call(Promise.resolve(), ok); };
""",
    "make async tests look synchronous": """
Object.defineProperty(Promise, Symbol.hasInstance, { value: () => false });
Object.defineProperty(Object.prototype, 'then', { value: undefined, configurable: true });
""",
    "read the nonce from a heap snapshot": """
const v8 = require('v8');
const snapshot = v8.getHeapSnapshot();
""",
    "reach V8 through process.binding": """
process.binding('v8').setFlagsFromString('--allow-natives-syntax');
""",
    "exit with status 0 at load": "process.exit(0);\n",
    "exit with status 0 from the function": (
        "module.exports = { add: () => { process.reallyExit(0); } };\n"
    ),
    "kill itself from the function": (
        "module.exports = { add: () => { process.kill(process.pid, 'SIGKILL'); } };\n"
    ),
    "drop the exit listeners and leave": """
module.exports = { add: () => { process.removeAllListeners('exit'); process.exit(0); } };
""",
    "emit the exit event by hand": """
module.exports = { add: () => { process.emit('exit', 0); return 0; } };
""",
    "rewrite records through a byteLength getter on Buffer.prototype": """
const realLength = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype), 'byteLength').get;
let busy = false;
Object.defineProperty(Buffer.prototype, 'byteLength', {
  configurable: true,
  get() {
    const n = realLength.call(this);
    if (busy) return n;
    busy = true;
    let text = '';
    for (let i = 0; i < n; i++) text += String.fromCharCode(this[i]);
    const m = /^(\\S+) \\{"t":"test","name":("[^"]*"),"status":"(?:failed|error)"/.exec(text);
    if (m) {
      let line = `${m[1]} {"t":"test","name":${m[2]},"status":"passed","message":""`;
      while (line.length < n - 2) line += ' ';
      line += '}\\n';
      for (let i = 0; i < n; i++) this[i] = line.charCodeAt(i);
    }
    busy = false;
    return n;
  },
});
""",
    "rewrite records through Array.prototype.push": """
const push = Array.prototype.push;
Array.prototype.push = function (...items) {
  if (this[0] === 't' && this[1] === 'test' && this[4] === 'status') {
    this[5] = 'passed';
    this[7] = '';
    return this.length;
  }
  return Reflect.apply(push, this, items);
};
""",
    "rewrite records through the array iterator": """
const iterator = Array.prototype[Symbol.iterator];
Array.prototype[Symbol.iterator] = function () {
  if (this[0] === 't' && this[1] === 'test' && this[4] === 'status') {
    this[5] = 'passed';
    this[7] = '';
  }
  return Reflect.apply(iterator, this, []);
};
""",
    "report fake results through every descriptor": """
const fs = require('node:fs');
const fake = JSON.stringify({ t: 'test', name: 'adds small numbers', status: 'passed' });
for (let fd = 0; fd < 64; fd++) { try { fs.writeSync(fd, 'x ' + fake + '\\n'); } catch {} }
""",
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
async def test_a_forged_verdict_does_not_pass(sandbox: Sandbox, attack: str) -> None:
    code = ATTACKS[attack] + WRONG

    report = await grade_js(sandbox, code)

    assert report.status != "passed", report
    assert report.passed == 0, report


async def test_a_correct_solution_that_extends_built_ins_still_passes(sandbox: Sandbox) -> None:
    code = "Array.prototype.total = function () { return this.reduce((a, b) => a + b, 0); };\n"

    report = await grade_js(sandbox, code + SOLUTION)

    assert report.status == "passed", report


async def test_the_tests_stay_hidden_from_the_solution(sandbox: Sandbox) -> None:
    code = """
const fs = require('node:fs');
let seen = fs.readdirSync('.').join(',');
for (const name of ['tests.js', '/work/tests.js']) {
  try { seen += ' ' + fs.readFileSync(name, 'utf8'); } catch {}
}
function add(a, b) {
  let caller = null;
  try { caller = add.caller; } catch {}
  if (caller) console.log('caller: ' + String(caller));
  return a + b;
}
console.log(seen);
module.exports = { add };
"""

    report = await grade_js(sandbox, code)

    assert report.status == "passed", report
    assert "strictEqual" not in report.stdout
    assert report.stdout.splitlines()[0] == "solution.js"


# Tests that lean on the realm's built-ins, as the bank's do: a helper with Math.abs, a list of
# cases walked with forEach, another with for ... of (the array iterator).
BUILT_IN_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

function assertClose(actual, expected) {
  assert.strictEqual(typeof actual, 'number');
  assert.ok(Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);
}

test('close to the sum', () => {
  assertClose(add(0.1, 0.2), 0.3);
});

test('each case with forEach', () => {
  [[1, 2, 3], [2, 2, 4]].forEach(([a, b, sum]) => assert.strictEqual(add(a, b), sum));
});

test('each case with for ... of', () => {
  for (const [a, b, sum] of [[1, 2, 3], [5, 5, 10]]) assert.strictEqual(add(a, b), sum);
});
"""

BUILT_IN_ATTACKS = {
    "replace Math.abs, forEach and the array iterator": """
Math.abs = () => 0;
Array.prototype.forEach = function () {};
Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({ done: true, value: undefined });
""",
    "redefine them instead of assigning": """
Object.defineProperty(Math, 'abs', { value: () => 0 });
Object.defineProperty(Array.prototype, 'forEach', { value() {} });
Object.defineProperty(Array.prototype, Symbol.iterator, { value: function* () {} });
""",
    "replace the global bindings": """
globalThis.Math = { abs: () => 0 };
globalThis.Array = function Array() {};
""",
    "assign them from the tests' file name": """
const vm = require('node:vm');
vm.runInThisContext('Math.abs = () => 0; Array.prototype.forEach = function () {};',
  { filename: require('node:path').join(__dirname, 'tests.js') });
""",
    "assign them from a file of its own named tests.js": """
const fs = require('node:fs');
const file = require('node:path').join(__dirname, 'tests.js');
fs.writeFileSync(file, 'Math.abs = () => 0; Array.prototype.forEach = function () {};');
require(file);
""",
    "call the built-in's setter and fake the call sites": """
Error.prepareStackTrace = (error, sites) => [{ getScriptHash: () => 'x' }];
const site = (() => {
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = (e, s) => s;
  const h = {};
  Error.captureStackTrace(h);
  const s = h.stack[0];
  Error.prepareStackTrace = prepare;
  return Object.getPrototypeOf(s);
})();
try { site.getScriptHash = () => 'x'; } catch {}
const { set } = Object.getOwnPropertyDescriptor(Math, 'abs');
try { set.call(Math, () => 0); } catch {}
try { Reflect.set(Math, 'abs', () => 0); } catch {}
try { Object.defineProperty(Error, 'prepareStackTrace', { get: () => () => [] }); } catch {}
""",
}


@pytest.mark.parametrize("attack", list(BUILT_IN_ATTACKS), ids=list(BUILT_IN_ATTACKS))
async def test_replacing_the_built_ins_the_tests_use_does_not_pass(
    sandbox: Sandbox, attack: str
) -> None:
    code = "try {\n" + BUILT_IN_ATTACKS[attack] + "\n} catch {}\n" + WRONG

    report = await grade_js(sandbox, code, BUILT_IN_TESTS)

    assert report.passed == 0, report
    assert (await grade_js(sandbox, SOLUTION, BUILT_IN_TESTS)).status == "passed"


FORBIDDING_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

function withoutReduce(fn) {
  const original = Array.prototype.reduce;
  Array.prototype.reduce = () => { throw new Error('reduce is not allowed here'); };
  try {
    return fn();
  } finally {
    Array.prototype.reduce = original;
  }
}

test('adds without reduce', () => {
  assert.strictEqual(withoutReduce(() => add(1, 2)), 3);
  assert.strictEqual([1, 2].reduce((a, b) => a + b), 3, 'reduce is back');
});
"""


async def test_the_tests_may_still_forbid_a_built_in_while_they_call_the_solution(
    sandbox: Sandbox,
) -> None:
    uses_reduce = "module.exports = { add: (a, b) => [a, b].reduce((x, y) => x + y) };\n"
    assigns = "this.name = 'x';\nconst o = {}; o.toString = () => 'o';\nclass E extends Error {}\n"
    assigns += "const e = new E('m'); e.name = 'E'; e.message = 'n';\n"

    assert (await grade_js(sandbox, assigns + SOLUTION, FORBIDDING_TESTS)).status == "passed"
    report = await grade_js(sandbox, uses_reduce, FORBIDDING_TESTS)
    assert report.status == "failed", report
    assert "reduce is not allowed here" in report.tests[0].message


ASYNC_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('adds', async () => {
  assert.strictEqual(await add(1, 2), 3);
});

test('adds more', async () => {
  assert.strictEqual(await add(2, 2), 4);
});
"""

# Reads the nonce from a heap snapshot taken through a module loaded by import(), which does
# not pass through Module._load, and writes a passing verdict on every pipe.
HEAP_SNAPSHOT_FORGERY = """
const fs = require('node:fs');
async function forge() {
  const v8 = await import('node:v8');
  let text = '';
  for await (const chunk of v8.getHeapSnapshot()) text += chunk;
  const fds = [];
  for (let fd = 3; fd < 256; fd++) {
    try { if (fs.fstatSync(fd).isFIFO()) fds.push(fd); } catch {}
  }
  const found = new Set(text.match(/"[0-9a-f]{32}"/g) || []);
  for (const quoted of found) {
    const nonce = quoted.slice(1, -1);
    let out = '';
    for (const name of ['adds', 'adds more']) {
      const record = { t: 'test', name, status: 'passed', message: '' };
      out += nonce + ' ' + JSON.stringify(record) + '\\n';
    }
    out += nonce + ' ' + JSON.stringify({ t: 'end', phase: 'tests' }) + '\\n';
    for (const fd of fds) { try { fs.writeSync(fd, out); } catch {} }
    process.reallyExit(0);
  }
}
module.exports = { add: async () => { await forge(); return 0; } };
"""


async def test_a_heap_snapshot_through_import_does_not_forge_a_pass(sandbox: Sandbox) -> None:
    report = await grade_js(sandbox, HEAP_SNAPSHOT_FORGERY, ASYNC_TESTS)

    assert report.passed == 0, report


async def test_import_cannot_load_what_require_cannot(sandbox: Sandbox) -> None:
    code = """
const names = ['v8', 'inspector', 'inspector/promises', 'trace_events', 'worker_threads'];
async function probe() {
  const loaded = [];
  for (const name of names) {
    try { await import('node:' + name); loaded.push(name); } catch {}
  }
  try { require('node:module').register('data:text/javascript,'); loaded.push('register'); }
  catch {}
  console.log('loaded:' + loaded.join(','));
}
module.exports = { add: async (a, b) => { await probe(); return a + b; } };
"""
    report = await grade_js(sandbox, code, ASYNC_TESTS)

    assert report.status == "passed", report
    assert report.stdout.splitlines()[0] == "loaded:", report.stdout


async def test_a_built_in_constructor_cannot_claim_every_error(sandbox: Sandbox) -> None:
    tests = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('rejects strings with a TypeError', () => {
  assert.throws(() => add('1', 2), TypeError);
});
"""
    claims = "try { Object.defineProperty(TypeError, Symbol.hasInstance, { value: () => true }); }"
    claims += " catch {}\nmodule.exports = { add: () => { throw new Error('wrong kind'); } };\n"
    right = "class Strict extends TypeError { static [Symbol.hasInstance](x) { return !!x; } }\n"
    right += "module.exports = { add: () => { throw new Strict('strings'); } };\n"

    assert (await grade_js(sandbox, claims, tests)).passed == 0
    assert (await grade_js(sandbox, right, tests)).status == "passed"
