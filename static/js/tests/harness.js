// A tiny test runner for the browser: no Node, no dependencies. Test modules register tests with
// `test(name, fn)`; run.js runs them, and tests/test_js_units.py reads the results through
// Playwright (or open static/js/tests/index.html on a running server and look).

const registered = [];

export function test(name, fn) {
  if (registered.some((entry) => entry.name === name)) throw new Error(`two tests are named ${name}`);
  registered.push({ name, fn });
}

export class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = "AssertionError";
  }
}

const show = (value) => (value === undefined ? "undefined" : JSON.stringify(value));

/** Deep equality over JSON-like values (arrays, plain objects, strings, numbers, booleans, null). */
function same(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && same(a[key], b[key]));
}

export function assertEqual(actual, expected, what = "value") {
  if (!same(actual, expected)) throw new AssertionError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function assert(condition, what = "assertion") {
  if (!condition) throw new AssertionError(`${what} failed`);
}

/** Timers the test moves by hand: pass as `timers` where a module takes them. */
export class FakeTimers {
  #now = 0;
  #next = 1;
  #pending = new Map(); // id -> {at, fn}

  setTimeout(fn, ms) {
    const id = this.#next++;
    this.#pending.set(id, { at: this.#now + ms, fn });
    return id;
  }

  clearTimeout(id) {
    this.#pending.delete(id);
  }

  get count() {
    return this.#pending.size;
  }

  /** Move time on by `ms`, running every timer that falls due, in order. */
  advance(ms) {
    const end = this.#now + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, timer] = due;
      this.#pending.delete(id);
      this.#now = timer.at;
      timer.fn();
    }
    this.#now = end;
  }
}

/** Run every registered test; one result per test: {name, ok, error}. */
export async function runAll() {
  const results = [];
  for (const { name, fn } of registered) {
    try {
      await fn();
      results.push({ name, ok: true, error: null });
    } catch (error) {
      results.push({ name, ok: false, error: `${error.name}: ${error.message}` });
    }
  }
  return results;
}
