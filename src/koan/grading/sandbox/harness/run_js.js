'use strict';
// Runs an exercise's JavaScript tests against solution.js, inside the sandbox.
//
// Conventions (docs/exercise-format.md): solution.js exports what the tests use; the tests are
// CommonJS using node:assert and a global test(name, fn) that this harness provides; fn may be
// async. Results go to the parent through a private descriptor, tagged with a nonce that only
// this closure holds; stdout/stderr belong to the learner and are never read for a verdict.
//
// The solution loads first, in the same realm, so everything the verdict depends on is taken
// before it runs and cannot be changed by it: the built-ins this harness calls (captured here;
// node's own assert uses its primordials), `test` (a frozen, non-writable global), and the
// `node:assert` the tests get (frozen, and handed to the tests by their own `require`, which
// the solution never sees). Records are built from primitives, so no getter, `toJSON` or
// `then` planted on a prototype takes part. The modules that read the heap (the nonce is on
// it) or reach V8's internals (`v8`, `inspector`, worker threads, `process.binding`) are not
// loadable, by `require` or `import()`. The standard built-ins the tests call (`Math.abs`,
// `Array.prototype.forEach`) cannot be replaced by the solution.
//
// A trial (the job has `programs` instead of `code`: the tutor's guard trying the fixes a reply
// suggests) loads each program in turn in this process and runs the tests against it, each
// call under a deadline, and reports one `case` record per program. The programs share this
// realm, so one could change what a later one sees; that can only make the trial's answer
// wrong, never reach beyond the run.
//
// Started as: node -e <this file> <job fd> <verdict fd> <work dir>
(() => {
  const fs = require('node:fs');
  const path = require('node:path');
  const util = require('node:util');
  const Module = require('node:module');
  const assert = require('node:assert');

  // Bound now, before any learner code can replace them.
  const ReflectApply = Reflect.apply;
  const ObjectDefineProperty = Object.defineProperty;
  const ObjectFreeze = Object.freeze;
  const ObjectPreventExtensions = Object.preventExtensions;
  const ReflectOwnKeys = Reflect.ownKeys;
  const ObjectKeys = Object.keys;
  const ArrayIsArray = Array.isArray;
  const StringCtor = String;
  const StringPrototypeSlice = String.prototype.slice;
  const StringPrototypeCharCodeAt = String.prototype.charCodeAt;
  const HEX = '0123456789abcdef';
  const RegExpPrototypeExec = RegExp.prototype.exec;
  const isPromise = util.types.isPromise;
  const isProxy = util.types.isProxy;
  const ReflectGetOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
  const ReflectGetPrototypeOf = Reflect.getPrototypeOf;
  const PromisePrototypeThen = Promise.prototype.then;
  const ArrayPrototypeIncludes = Array.prototype.includes;
  const StringPrototypeReplace = String.prototype.replace;
  const setImmediateCaptured = setImmediate;
  const setTimeoutCaptured = setTimeout;
  const clearTimeoutCaptured = clearTimeout;
  const DateNow = Date.now;
  const MathRandom = Math.random;
  const MathFloor = Math.floor;
  const MathMax = Math.max;
  const writeSync = fs.writeSync;
  const writeFileSync = fs.writeFileSync;
  const mkdirSync = fs.mkdirSync;
  const vm = require('node:vm');
  const ScriptRunInContext = vm.Script.prototype.runInContext;
  const stringify = JSON.stringify;
  const inspect = util.inspect;
  const basename = path.basename;
  const join = path.join;
  const exit = process.exit.bind(process);
  const processOn = process.on.bind(process);
  const load = Module._load;
  const MESSAGE_LIMIT = 4000;
  const BLOCKED = ['v8', 'inspector', 'inspector/promises', 'trace_events', 'worker_threads'];
  const ASSERT_NAMES = ['assert', 'node:assert', 'assert/strict', 'node:assert/strict'];
  const STRICT_NAMES = ['assert/strict', 'node:assert/strict'];

  // The standard built-ins as the tests see them. The tests call them (`Math.abs`,
  // `list.forEach`, `for ... of` through the array iterator) in the solution's realm, so a
  // solution that replaced one (`Math.abs = () => 0`, a `forEach` that runs nothing) would
  // decide what the tests check. Before the solution loads, every own property of the built-in
  // constructors, namespaces and prototypes, and their global bindings, becomes permanent: an
  // accessor whose getter gives the value and whose setter
  // - on any other object defines the property there (so `this.name = ...` in an Error
  //   subclass and `obj.toString = ...` work as before);
  // - on the built-in itself changes it only when the assignment is written in the tests'
  //   own code (tests may forbid a built-in while they call the solution: `Array.prototype.flat
  //   = ...`), known by the hash V8 keeps of the script of the frame that assigns; anything
  //   else (the solution, a built-in it handed a callback to) gets a TypeError.
  // Adding new properties (`Array.prototype.total = ...`) is left alone: the tests cannot rely
  // on a property they do not know. Error's `stackTraceLimit` and `prepareStackTrace` stay
  // writable data (node sets the first while it builds assertion errors; the setter reads
  // stacks through both) but cannot be turned into accessors.
  const ObjectGetPrototypeOf = Object.getPrototypeOf;
  const ErrorCaptureStackTrace = Error.captureStackTrace;
  const ErrorCtor = Error;
  const createHash = require('node:crypto').createHash;
  const GLOBAL_BUILT_INS = [
    'Object', 'Function', 'Array', 'Number', 'Boolean', 'String', 'Symbol', 'BigInt', 'Date',
    'RegExp', 'Promise', 'Proxy', 'Reflect', 'JSON', 'Math', 'Intl', 'Atomics', 'Map', 'Set',
    'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry', 'ArrayBuffer', 'SharedArrayBuffer',
    'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
    'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array',
    'BigUint64Array', 'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError',
    'SyntaxError', 'TypeError', 'URIError', 'parseInt', 'parseFloat', 'isNaN', 'isFinite',
    'encodeURI', 'encodeURIComponent', 'decodeURI', 'decodeURIComponent', 'escape', 'unescape',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate',
    'clearImmediate', 'queueMicrotask', 'structuredClone',
  ];
  const ERROR_SETTINGS = ['stackTraceLimit', 'prepareStackTrace'];
  let testsHash = null; // sha-256 of the tests' script, as V8 reports it for their frames

  function callSites(error, sites) {
    return sites;
  }
  // CallSite's methods are no built-in the solution cannot reach: taken now.
  const CallSiteGetScriptHash = (() => {
    const prepare = ErrorCtor.prepareStackTrace;
    const holder = {};
    try {
      ErrorCtor.prepareStackTrace = callSites;
      ErrorCaptureStackTrace(holder);
      return ObjectGetPrototypeOf(holder.stack[0]).getScriptHash;
    } finally {
      ErrorCtor.prepareStackTrace = prepare;
    }
  })();

  // Whether the frame that called `fn` runs the tests' own code.
  function calledFromTests(fn) {
    if (testsHash === null) return false;
    const limit = ErrorCtor.stackTraceLimit;
    const prepare = ErrorCtor.prepareStackTrace;
    const holder = { __proto__: null };
    let sites = null;
    try {
      ErrorCtor.stackTraceLimit = 1;
      ErrorCtor.prepareStackTrace = callSites;
      ErrorCaptureStackTrace(holder, fn);
      sites = holder.stack;
    } finally {
      ErrorCtor.prepareStackTrace = prepare;
      ErrorCtor.stackTraceLimit = limit;
    }
    return ArrayIsArray(sites) && sites.length === 1 && ReflectApply(CallSiteGetScriptHash, sites[0], []) === testsHash;
  }

  function lockProperties(owner, label, keys) {
    for (let i = 0; i < keys.length; i += 1) {
      const key = keys[i];
      const desc = ReflectGetOwnPropertyDescriptor(owner, key);
      if (!desc.configurable) continue;
      if (!('value' in desc) || !desc.writable) {
        ObjectDefineProperty(owner, key, { configurable: false });
        continue;
      }
      let value = desc.value;
      const name = label + (typeof key === 'symbol' ? `[${StringCtor(key.description)}]` : (label ? '.' : '') + key);
      ObjectDefineProperty(owner, key, {
        get: function get() {
          return value;
        },
        set: function set(replacement) {
          if (this !== owner) {
            ObjectDefineProperty(this, key, { value: replacement, writable: true, enumerable: true, configurable: true });
          } else if (calledFromTests(set)) {
            value = replacement;
          } else {
            throw new TypeError(`graded code may not replace the built-in ${name}`);
          }
        },
        enumerable: desc.enumerable,
        configurable: false,
      });
    }
  }

  function lockBuiltIns() {
    for (let i = 0; i < ERROR_SETTINGS.length; i += 1) {
      const desc = ReflectGetOwnPropertyDescriptor(ErrorCtor, ERROR_SETTINGS[i]);
      const value = desc !== undefined && 'value' in desc ? desc.value : undefined;
      ObjectDefineProperty(ErrorCtor, ERROR_SETTINGS[i], { value, writable: true, enumerable: false, configurable: false });
    }
    const owners = [];
    const seen = new Set();
    const add = (value, label) => {
      if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
      if (seen.has(value)) return;
      seen.add(value);
      owners[owners.length] = [value, label];
    };
    const globals = {};
    for (let i = 0; i < GLOBAL_BUILT_INS.length; i += 1) {
      const name = GLOBAL_BUILT_INS[i];
      const desc = ReflectGetOwnPropertyDescriptor(globalThis, name);
      if (desc === undefined || !('value' in desc)) continue;
      if (desc.configurable && desc.writable) globals[name] = desc.value;
      add(desc.value, name);
      if (typeof desc.value === 'function') add(desc.value.prototype, name + '.prototype');
    }
    // Prototypes that no global names: iterators (for ... of, spreading), generators, typed
    // arrays.
    const arrayIterator = ObjectGetPrototypeOf([][Symbol.iterator]());
    add(arrayIterator, 'Array Iterator');
    add(ObjectGetPrototypeOf(arrayIterator), 'Iterator');
    add(ObjectGetPrototypeOf(''[Symbol.iterator]()), 'String Iterator');
    add(ObjectGetPrototypeOf(new Map()[Symbol.iterator]()), 'Map Iterator');
    add(ObjectGetPrototypeOf(new Set()[Symbol.iterator]()), 'Set Iterator');
    add(ObjectGetPrototypeOf(ReflectApply(String.prototype.matchAll, 'a', [/a/g])), 'RegExp String Iterator');
    const typedArray = ObjectGetPrototypeOf(Uint8Array);
    add(typedArray, 'TypedArray');
    add(typedArray.prototype, 'TypedArray.prototype');
    const kinds = [function* g() {}, async function a() {}, async function* ag() {}];
    for (let i = 0; i < kinds.length; i += 1) {
      const kind = ObjectGetPrototypeOf(kinds[i]);
      add(kind, kind.constructor.name);
      add(kind.prototype, kind.constructor.name + '.prototype');
      if (kind.prototype) add(ObjectGetPrototypeOf(kind.prototype), kind.constructor.name + ' Iterator');
    }
    // `x instanceof RangeError` (node's assert.throws) asks the constructor for
    // Symbol.hasInstance first: each built-in constructor gets Function.prototype's own, so
    // the solution cannot add one that says yes.
    const hasInstance = Function.prototype[Symbol.hasInstance];
    for (let i = 0; i < owners.length; i += 1) {
      const owner = owners[i][0];
      if (typeof owner === 'function' && ReflectGetOwnPropertyDescriptor(owner, Symbol.hasInstance) === undefined) {
        ObjectDefineProperty(owner, Symbol.hasInstance, { value: hasInstance, writable: false, enumerable: false, configurable: false });
      }
      if (owner !== ErrorCtor) lockProperties(owner, owners[i][1], ReflectOwnKeys(owner));
    }
    // The global bindings last: `Math = {...}` from the solution.
    lockProperties(globalThis, '', ObjectKeys(globals));
  }

  lockBuiltIns();

  // `import()` reaches node's modules without Module._load, so the modules that read the heap
  // or reach V8 (and worker threads, whose modules are their own and whose inspector reaches
  // this thread) are emptied where both loaders find them: each export throws, so importing
  // one fails too. Loader hooks (`module.register`) would run in such a thread.
  const UNAVAILABLE = ['v8', 'inspector', 'inspector/promises', 'trace_events', 'worker_threads'];
  function unavailable(name) {
    return function refuse() {
      throw new Error(`the module '${name}' is not available in the sandbox`);
    };
  }
  for (let i = 0; i < UNAVAILABLE.length; i += 1) {
    let exports = null;
    try {
      exports = ReflectApply(load, Module, ['node:' + UNAVAILABLE[i], null, false]);
    } catch {
      continue; // not built into this node
    }
    const refuse = unavailable(UNAVAILABLE[i]);
    const keys = ReflectOwnKeys(exports);
    for (let k = 0; k < keys.length; k += 1) {
      ObjectDefineProperty(exports, keys[k], { get: refuse, set: refuse, enumerable: true, configurable: false });
    }
    ObjectPreventExtensions(exports);
  }
  ObjectDefineProperty(Module, 'register', { get: unavailable('module.register'), configurable: false });

  const jobFd = Number(process.argv[1]);
  const verdictFd = Number(process.argv[2]);
  const workdir = process.argv[3];
  const job = JSON.parse(fs.readFileSync(jobFd, 'utf8'));
  fs.closeSync(jobFd);
  const nonce = String(job.nonce);
  const testsSource = String(job.tests);
  process.argv = [process.argv[0], join(workdir, 'solution.js')];
  // The job is in hand (a spare node waited for it): from here on the run is under way.
  emit(['t', 'ready']);

  // Only primitives: a JSON string per field, concatenated.
  function line(fields) {
    let text = '{';
    for (let i = 0; i < fields.length; i += 2) {
      const value = fields[i + 1];
      let encoded;
      if (ArrayIsArray(value)) {
        encoded = '[';
        for (let j = 0; j < value.length; j += 1) encoded += (j ? ',' : '') + stringify(StringCtor(value[j]));
        encoded += ']';
      } else {
        encoded = stringify(StringCtor(value));
      }
      text += (i ? ',' : '') + stringify(fields[i]) + ':' + encoded;
    }
    return text + '}';
  }

  // JSON's escapes for everything outside ASCII, so that characters and bytes count alike.
  function ascii(text) {
    let out = '';
    for (let i = 0; i < text.length; i += 1) {
      const code = ReflectApply(StringPrototypeCharCodeAt, text, [i]);
      if (code < 0x80) {
        out += text[i];
      } else {
        out += '\\u' + HEX[(code >> 12) & 15] + HEX[(code >> 8) & 15] + HEX[(code >> 4) & 15] + HEX[code & 15];
      }
    }
    return out;
  }

  // Written as a string: a Buffer would be read through properties the solution can plant
  // getters on (`byteLength` on Buffer.prototype sees the nonce and can rewrite the record).
  function emit(fields) {
    let text = ascii(nonce + ' ' + line(fields) + '\n');
    while (text.length > 0) {
      const written = writeSync(verdictFd, text);
      text = ReflectApply(StringPrototypeSlice, text, [written]);
    }
  }

  function emitTest(name, result) {
    // Array literals only: a method called on the fields (push), or spreading them (the array
    // iterator), would run the solution's code with the record in hand.
    const { status, message, exc } = result;
    if (exc === undefined) emit(['t', 'test', 'name', name, 'status', status, 'message', message]);
    else emit(['t', 'test', 'name', name, 'status', status, 'message', message, 'exc', exc]);
  }

  function clip(text) {
    return text.length <= MESSAGE_LIMIT ? text : ReflectApply(StringPrototypeSlice, text, [0, MESSAGE_LIMIT - 1]) + '…';
  }

  function where(error) {
    let stack = '';
    try {
      stack = error && typeof error.stack === 'string' ? error.stack : '';
    } catch {
      return '';
    }
    for (const text of stack.split('\n')) {
      // "    at add (/work/solution.js:2:9)", or a SyntaxError's first line "/work/solution.js:2"
      const match =
        ReflectApply(RegExpPrototypeExec, /\(?([^\s()]+):(\d+):\d+\)?\s*$/, [text]) ||
        ReflectApply(RegExpPrototypeExec, /^([^\s()]+):(\d+)$/, [text]);
      if (match && (basename(match[1]) === 'solution.js' || basename(match[1]) === 'tests.js')) {
        return ` (${basename(match[1])}, line ${match[2]})`;
      }
    }
    return '';
  }

  function describe(error) {
    try {
      if (error instanceof Error) {
        const head = error.message ? `${error.name}: ${error.message}` : error.name;
        return StringCtor(head) + where(error);
      }
      return `Thrown: ${inspect(error, { depth: 2 })}`;
    } catch {
      return 'an exception that could not be described';
    }
  }

  // The name a test called that solution.js does not export, or '': node's own message for
  // it ("add is not a function") blames the tests. Read through descriptors, so no getter or
  // proxy of the solution's runs.
  function missingExport(error) {
    try {
      if (!(error instanceof TypeError) || !ReflectApply(RegExpPrototypeExec, /\(tests\.js, line \d+\)$/, [where(error)])) return '';
      const match = ReflectApply(RegExpPrototypeExec, /^([A-Za-z_$][\w$]*) is not a function$/, [StringCtor(error.message)]);
      if (!match) return '';
      for (let seen = exportsSeen, depth = 0; seen !== null && depth < 64; depth += 1) {
        if ((typeof seen !== 'object' && typeof seen !== 'function') || isProxy(seen)) return '';
        if (ReflectGetOwnPropertyDescriptor(seen, match[1]) !== undefined) return '';
        seen = ReflectGetPrototypeOf(seen);
      }
      return match[1];
    } catch {
      return '';
    }
  }

  function result(status, message, exc) {
    return { __proto__: null, status, message, exc };
  }

  function classify(error) {
    try {
      if (error instanceof assert.AssertionError) {
        const message = StringCtor(error.message || 'assertion failed');
        return result('failed', clip(message + where(error)), 'AssertionError');
      }
      const isMemory =
        error instanceof RangeError &&
        ReflectApply(RegExpPrototypeExec, /allocation failed|Invalid (array|string) length/, [StringCtor(error.message)]);
      const name = isMemory ? 'MemoryError' : StringCtor((error && error.name) || typeof error);
      const missing = missingExport(error);
      if (missing) return result('error', clip(`solution.js does not export ${missing}` + where(error)), name);
      return result('error', clip(describe(error)), name);
    } catch {
      return result('error', 'an exception that could not be described', 'Error');
    }
  }

  // The tests' assert: frozen before the solution loads, so no function of it can be replaced.
  for (const name of ObjectKeys(assert)) {
    const value = assert[name];
    if (value !== null && (typeof value === 'object' || typeof value === 'function')) ObjectFreeze(value);
  }
  ObjectFreeze(assert);

  let tests = [];
  let collecting = false;
  function test(name, fn) {
    if (!collecting) throw new Error('test() must be called while the tests file loads');
    ObjectDefineProperty(tests, tests.length, {
      value: { __proto__: null, name: StringCtor(name), fn },
      writable: false,
      enumerable: true,
      configurable: false,
    });
  }
  ObjectFreeze(test);
  ObjectDefineProperty(globalThis, 'test', { value: test, writable: false, configurable: false });

  // Learner code cannot load what reads the heap or reaches V8's internals.
  Module._load = function _load(request, parent, isMain) {
    const bare = ReflectApply(StringPrototypeReplace, StringCtor(request), [/^node:/, '']);
    if (ReflectApply(ArrayPrototypeIncludes, BLOCKED, [bare])) throw new Error(`the module '${request}' is not available in the sandbox`);
    return ReflectApply(load, this, [request, parent, isMain]);
  };
  for (const name of ['binding', '_linkedBinding', '_debugProcess']) {
    ObjectDefineProperty(process, name, { value: undefined, writable: false, configurable: false });
  }


  let exportsSeen = null; // the solution's exports the tests were given

  // Settles a test that returned as passed on the next turn of the event loop, unless an
  // unhandled rejection of its own settles it first.
  function passLater(settle) {
    setImmediateCaptured(() => settle(result('passed', '')));
  }

  let next = 0; // index of the first test not yet reported
  let finished = false;
  let current = null; // settles the running test from an uncaught error

  // Registered before the solution loads, so it cannot get in ahead of them.
  processOn('uncaughtException', (error) => {
    if (current) current(classify(error));
  });
  // Node ends a program on a rejection nobody handles; here it fails the running test. Node
  // reports one once the microtasks have run, so a test that returns is only settled as
  // passed on the turn after (see `passLater`), when its rejections are known.
  processOn('unhandledRejection', (error) => {
    if (!current) return;
    const outcome = classify(error);
    current(result(outcome.status, clip('unhandled promise rejection: ' + outcome.message), outcome.exc));
  });
  let trialExit = null; // in a trial: reports the program that was running
  processOn('exit', () => {
    if (finished) return;
    if (trialExit !== null) {
      finished = true;
      trialExit();
      return;
    }
    // The event loop emptied while a test waited on a promise that never settles, or the code
    // called process.exit(): the remaining tests did not finish.
    finished = true;
    const message = 'the test did not finish (process.exit() was called, or it awaited a promise that never settles)';
    for (; next < tests.length; next += 1) emitTest(tests[next].name, result('error', message));
    emit(['t', 'end', 'phase', 'tests']);
  });

  const solutionPath = join(workdir, 'solution.js');
  const testsPath = join(workdir, 'tests.js');
  let testsWrapper = null;
  let testsCompileError = null;
  try {
    // Strict, so the solution cannot reach a test function through `add.caller`.
    const wrapped = '(function (exports, require, module, __filename, __dirname) {"use strict";' + testsSource + '\n})';
    testsHash = createHash('sha256').update(wrapped).digest('hex');
    testsWrapper = vm.runInThisContext(wrapped, { filename: testsPath, lineOffset: 0 });
  } catch (error) {
    testsCompileError = error;
  }

  // The tests get their own require: the frozen assert and the solution's exports as the
  // harness saw them, whatever the solution did to the module loader since.
  function loadTests(solution, solutionFile, call) {
    if (testsCompileError !== null) throw testsCompileError;
    const testsModule = new Module(testsPath, null);
    testsModule.filename = testsPath;
    testsModule.paths = [workdir];
    function testsRequire(request) {
      const name = StringCtor(request);
      if (ReflectApply(ArrayPrototypeIncludes, ASSERT_NAMES, [name])) {
        return ReflectApply(ArrayPrototypeIncludes, STRICT_NAMES, [name]) ? assert.strict : assert;
      }
      if (name === './solution.js' || name === './solution' || name === solutionFile) return solution;
      return ReflectApply(load, Module, [name, testsModule, false]);
    }
    exportsSeen = solution;
    tests = [];
    collecting = true;
    try {
      call(() => ReflectApply(testsWrapper, testsModule.exports, [testsModule.exports, testsRequire, testsModule, testsPath, workdir]));
    } finally {
      collecting = false;
    }
  }

  if (ArrayIsArray(job.programs)) {
    trial();
    return;
  }

  // Written here, not by the launcher: a spare node starts before its job exists.
  writeFileSync(solutionPath, StringCtor(job.code), { flag: 'wx', mode: 0o644 });
  let importError = null;
  let solution = {};
  try {
    solution = require(solutionPath);
  } catch (error) {
    importError = error;
  }
  try {
    loadTests(solution, solutionPath, (run) => run());
  } catch (error) {
    importError = importError || error;
  }

  const names = [];
  for (let i = 0; i < tests.length; i += 1) ObjectDefineProperty(names, i, { value: tests[i].name, enumerable: true });

  if (importError !== null) {
    const message = clip(describe(importError));
    const exc = classify(importError).exc;
    const planned = names.length ? names : ['tests.js'];
    finished = true;
    emit(['t', 'plan', 'tests', planned]);
    for (let i = 0; i < planned.length; i += 1) emitTest(planned[i], result('error', message, exc));
    emit(['t', 'end', 'phase', 'import']);
    exit(0);
    return;
  }

  emit(['t', 'plan', 'tests', names]);

  function runOne(entry, done) {
    let settled = false;
    const settle = (outcome) => {
      if (settled) return;
      settled = true;
      current = null;
      done(outcome);
    };
    current = settle;
    try {
      const value = ReflectApply(entry.fn, undefined, []);
      // Not instanceof: the solution can give Promise a Symbol.hasInstance of its own.
      if (isPromise(value)) {
        ReflectApply(PromisePrototypeThen, value, [
          () => passLater(settle),
          (error) => settle(classify(error)),
        ]);
      } else {
        passLater(settle);
      }
    } catch (error) {
      settle(classify(error));
    }
  }

  function step() {
    if (next >= tests.length) {
      finished = true;
      emit(['t', 'end', 'phase', 'tests']);
      exit(0);
      return;
    }
    const entry = tests[next];
    runOne(entry, (outcome) => {
      if (finished) return;
      emitTest(entry.name, outcome);
      next += 1;
      // A fresh turn of the event loop, as awaiting between tests did.
      setImmediateCaptured(step);
    });
  }
  step();

  // Appends without Array.prototype.push or an index setter a program may have planted.
  function append(list, value) {
    ObjectDefineProperty(list, list.length, { value, writable: true, enumerable: true, configurable: true });
  }

  function trial() {
    const programs = [];
    for (let i = 0; i < job.programs.length; i += 1) append(programs, StringCtor(job.programs[i]));
    let only = null;
    if (ArrayIsArray(job.only)) {
      only = [];
      for (let i = 0; i < job.only.length; i += 1) append(only, StringCtor(job.only[i]));
    }
    const stop = StringCtor(job.stop || 'never');
    // A program that calls process.exit() ends itself, not the trial (the harness ends it
    // with the `exit` it took at the start).
    ObjectDefineProperty(process, 'exit', {
      value: function exitProgram() {
        throw new Error('process.exit() was called');
      },
      writable: false,
      configurable: false,
    });
    const caseMs = MathMax(1, MathFloor(Number(job.case_wall_s) * 1000) || 2000);
    // Each call into a program runs from a script with a deadline: V8 stops a loop that
    // overruns it, whatever the program catches.
    const caller = new vm.Script('"use strict"; call();', { filename: 'koan-trial.js' });
    const box = vm.createContext({ call: null });
    function timed(fn, ms) {
      box.call = fn;
      try {
        return ReflectApply(ScriptRunInContext, caller, [box, { __proto__: null, timeout: MathMax(1, MathFloor(ms)), displayErrors: false, breakOnSigint: false }]);
      } finally {
        box.call = null;
      }
    }

    let index = 0;
    let running = null; // { index, plan, passed } of the program being tried

    function report(status) {
      const state = running;
      running = null;
      emit(['t', 'case', 'index', state.index, 'status', status, 'plan', state.plan, 'passed', state.passed]);
      return state;
    }

    function end() {
      finished = true;
      trialExit = null;
      emit(['t', 'end', 'phase', 'trial']);
      exit(0);
    }

    trialExit = () => {
      // A program called process.exit(): what it passed so far still counts.
      if (running !== null) report('error');
      emit(['t', 'end', 'phase', 'trial']);
    };

    function nextProgram() {
      if (index >= programs.length) {
        end();
        return;
      }
      const k = index;
      index += 1;
      running = { __proto__: null, index: k, plan: [], passed: [] };
      const deadline = DateNow() + caseMs;
      const dir = join(workdir, 'case-' + k + '-' + ReflectApply(StringPrototypeSlice, StringCtor(MathRandom()), [2]));
      const file = join(dir, 'solution.js');
      let failure = null;
      try {
        mkdirSync(dir, 0o700);
        writeFileSync(file, programs[k]);
        const solution = timed(() => ReflectApply(load, Module, [file, null, false]), caseMs);
        loadTests(solution, file, (run) => timed(run, deadline - DateNow()));
      } catch (error) {
        failure = error;
      }
      const selected = [];
      for (let i = 0; i < tests.length; i += 1) {
        if (only === null || ReflectApply(ArrayPrototypeIncludes, only, [tests[i].name])) append(selected, tests[i]);
      }
      for (let i = 0; i < selected.length; i += 1) append(running.plan, selected[i].name);
      if (failure !== null) {
        finish(report('import'));
        return;
      }
      let t = 0;
      function stepCase() {
        if (t >= selected.length) {
          finish(report('tests'));
          return;
        }
        const remaining = deadline - DateNow();
        if (remaining <= 0) {
          finish(report('timeout'));
          return;
        }
        const entry = selected[t];
        t += 1;
        runTimed(entry, remaining, (outcome) => {
          if (running === null) return;
          if (outcome.status === 'passed') {
            append(running.passed, entry.name);
            // Under "any" one passed test decides: the trial ends with this program.
            if (stop === 'any') {
              finish(report('tests'));
              return;
            }
          }
          setImmediateCaptured(stepCase);
        });
      }
      stepCase();
    }

    function runTimed(entry, remaining, done) {
      let settled = false;
      let timer = null;
      const settle = (outcome) => {
        if (settled) return;
        settled = true;
        current = null;
        if (timer !== null) clearTimeoutCaptured(timer);
        done(outcome);
      };
      current = settle;
      try {
        const value = timed(entry.fn, remaining);
        if (isPromise(value)) {
          timer = setTimeoutCaptured(() => settle(result('error', 'the test did not finish in time')), remaining);
          ReflectApply(PromisePrototypeThen, value, [
            () => passLater(settle),
            (error) => settle(classify(error)),
          ]);
        } else {
          passLater(settle);
        }
      } catch (error) {
        settle(classify(error));
      }
    }

    function finish(state) {
      const passedAll = state.plan.length > 0 && state.passed.length === state.plan.length;
      if ((stop === 'any' && state.passed.length > 0) || (stop === 'all' && passedAll)) {
        end();
        return;
      }
      setImmediateCaptured(nextProgram);
    }

    nextProgram();
  }
})();
