'use strict';
// Runs an exercise's JavaScript tests against solution.js, inside the sandbox.
//
// Conventions (docs/exercise-format.md): solution.js exports what the tests use; the tests are
// CommonJS using node:assert and a global test(name, fn) that this harness provides; fn may be
// async. Results go to the parent through a private descriptor, tagged with a nonce that only
// this closure holds; stdout/stderr belong to the learner and are never read for a verdict.
//
// Started as: node -e <this file> <job fd> <verdict fd> <work dir>
(() => {
  const fs = require('node:fs');
  const path = require('node:path');
  const util = require('node:util');
  const Module = require('node:module');

  // Bound now, before any learner code can replace them.
  const writeSync = fs.writeSync;
  const stringify = JSON.stringify;
  const bufferFrom = Buffer.from.bind(Buffer);
  const inspect = util.inspect;
  const exit = process.exit.bind(process);
  const MESSAGE_LIMIT = 4000;
  const LEARNER_FILES = ['solution.js', 'tests.js'];

  const jobFd = Number(process.argv[1]);
  const verdictFd = Number(process.argv[2]);
  const workdir = process.argv[3];
  const job = JSON.parse(fs.readFileSync(jobFd, 'utf8'));
  fs.closeSync(jobFd);
  const nonce = String(job.nonce);
  process.argv = [process.argv[0], path.join(workdir, 'solution.js')];

  function emit(record) {
    const data = bufferFrom(nonce + ' ' + stringify(record) + '\n', 'utf8');
    let offset = 0;
    while (offset < data.length) offset += writeSync(verdictFd, data, offset);
  }

  function clip(text) {
    return text.length <= MESSAGE_LIMIT ? text : text.slice(0, MESSAGE_LIMIT - 1) + '…';
  }

  function where(error) {
    const stack = error && typeof error.stack === 'string' ? error.stack : '';
    for (const line of stack.split('\n')) {
      // "    at add (/work/solution.js:2:9)", or a SyntaxError's first line "/work/solution.js:2"
      const match = /\(?([^\s()]+):(\d+):\d+\)?\s*$/.exec(line) || /^([^\s()]+):(\d+)$/.exec(line);
      if (match && LEARNER_FILES.includes(path.basename(match[1]))) {
        return ` (${path.basename(match[1])}, line ${match[2]})`;
      }
    }
    return '';
  }

  function describe(error) {
    if (error instanceof Error) {
      const head = error.message ? `${error.name}: ${error.message}` : error.name;
      return head + where(error);
    }
    return `Thrown: ${inspect(error, { depth: 2 })}`;
  }

  function classify(error) {
    if (error && (error.code === 'ERR_ASSERTION' || error.name === 'AssertionError')) {
      const message = String(error.message || 'assertion failed').trim();
      return { status: 'failed', message: clip(message + where(error)), exc: 'AssertionError' };
    }
    const isMemory =
      error instanceof RangeError && /allocation failed|Invalid (array|string) length/.test(error.message);
    return {
      status: 'error',
      message: clip(describe(error)),
      exc: isMemory ? 'MemoryError' : (error && error.name) || typeof error,
    };
  }

  const tests = [];
  let collecting = true;
  globalThis.test = function test(name, fn) {
    if (!collecting) throw new Error('test() must be called while the tests file loads');
    tests.push({ name: String(name), fn });
  };

  const solutionPath = path.join(workdir, 'solution.js');
  const testsPath = path.join(workdir, 'tests.js');
  let importError = null;
  try {
    require(solutionPath);
  } catch (error) {
    importError = error;
    // Let the tests file load anyway (against an empty module) so every test can be named.
    const stub = new Module(solutionPath, null);
    stub.filename = solutionPath;
    stub.loaded = true;
    stub.exports = {};
    Module._cache[solutionPath] = stub;
  }
  try {
    require(testsPath);
  } catch (error) {
    importError = importError || error;
  }
  collecting = false;

  if (importError !== null) {
    const message = clip(describe(importError));
    const exc = classify(importError).exc;
    const names = tests.length ? tests.map((t) => t.name) : ['tests.js'];
    emit({ t: 'plan', tests: names });
    for (const name of names) emit({ t: 'test', name, status: 'error', message, exc });
    emit({ t: 'end', phase: 'import' });
    exit(0);
    return;
  }

  emit({ t: 'plan', tests: tests.map((t) => t.name) });
  let next = 0; // index of the first test not yet reported
  let finished = false;
  let current = null; // settles the running test from an uncaught error

  process.on('uncaughtException', (error) => {
    if (current) current(classify(error));
  });
  process.on('unhandledRejection', (error) => {
    if (current) current(classify(error));
  });
  process.on('exit', () => {
    if (finished) return;
    // The event loop emptied while a test waited on a promise that never settles, or the code
    // called process.exit(): the remaining tests did not finish.
    const message = 'the test did not finish (process.exit() was called, or it awaited a promise that never settles)';
    for (; next < tests.length; next += 1) {
      emit({ t: 'test', name: tests[next].name, status: 'error', message });
    }
    finished = true;
    emit({ t: 'end', phase: 'tests' });
  });

  function runOne(entry) {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (result) => {
        if (settled) return;
        settled = true;
        current = null;
        resolve(result);
      };
      current = settle;
      try {
        const result = entry.fn();
        if (result && typeof result.then === 'function') {
          result.then(
            () => settle({ status: 'passed', message: '' }),
            (error) => settle(classify(error)),
          );
        } else {
          settle({ status: 'passed', message: '' });
        }
      } catch (error) {
        settle(classify(error));
      }
    });
  }

  (async () => {
    for (; next < tests.length; ) {
      const entry = tests[next];
      const result = await runOne(entry);
      emit({ t: 'test', name: entry.name, ...result });
      next += 1;
    }
    finished = true;
    emit({ t: 'end', phase: 'tests' });
    exit(0);
  })();
})();
