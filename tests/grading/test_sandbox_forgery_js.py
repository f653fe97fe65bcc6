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
