// Lockdown: runs once per worker, after the runtime and before any app code.
//
// Keeps only the ECMAScript standard globals (the names a pristine realm has: PythonMonkey's
// debugger realm is one) plus a few pure web APIs, installs fazt's console/atob/btoa, removes
// the debugger, and freezes every object reachable from either realm's global.
(function (installed) {
  'use strict';
  const KEEP = new Set(['URL', 'URLSearchParams', 'debuggerGlobal']);
  const standard = new Set(Object.getOwnPropertyNames(debuggerGlobal));
  standard.delete('Debugger');
  for (const name of Reflect.ownKeys(globalThis)) {
    if (typeof name === 'string' && (standard.has(name) || KEEP.has(name))) continue;
    if (!Reflect.deleteProperty(globalThis, name)) {
      throw new Error(`lockdown: cannot remove global ${String(name)}`);
    }
  }
  for (const name of Object.keys(installed)) {
    Object.defineProperty(globalThis, name, {
      value: installed[name], writable: false, enumerable: false, configurable: false,
    });
  }
  if (!Reflect.deleteProperty(debuggerGlobal, 'Debugger')) {
    throw new Error('lockdown: cannot remove debuggerGlobal.Debugger');
  }

  // core-js (PythonMonkey loads it for URL) replaced Function.prototype.toString with a JS
  // function from a host file: an error thrown through it carried host paths in its stack and
  // fileName. Back to the native one (the pristine realm's), throwing this realm's TypeError.
  const nativeToString = debuggerGlobal.Function.prototype.toString;
  const apply = Reflect.apply;
  const toString = {
    toString() {
      try {
        return apply(nativeToString, this, []);
      } catch (e) {
        throw new TypeError('Function.prototype.toString called on incompatible object');
      }
    },
  }.toString;
  Object.defineProperty(Function.prototype, 'toString', {
    value: toString, writable: true, enumerable: false, configurable: true,
  });

  // Intrinsics no global property leads to (async/generator functions, iterators).
  const HIDDEN = '[async function () {}, function* () {}, async function* () {}, ' +
    '[][Symbol.iterator](), new Map().entries(), new Set().values(), ""[Symbol.iterator](), ' +
    '"a".matchAll(/a/g), (function* () {})(), (async function* () {})()]';
  const hidden = (realm) => new realm.Function(`return ${HIDDEN}`)();

  const seen = new Set();
  const stack = [globalThis, debuggerGlobal, ...hidden(globalThis), ...hidden(debuggerGlobal)];
  while (stack.length) {
    const value = stack.pop();
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    stack.push(Object.getPrototypeOf(value));
    for (const key of Reflect.ownKeys(value)) {
      const desc = Reflect.getOwnPropertyDescriptor(value, key);
      if (desc === undefined) continue;
      if ('value' in desc) stack.push(desc.value);
      else {
        stack.push(desc.get);
        stack.push(desc.set);
      }
    }
    Object.freeze(value);
  }

  // RegExp's legacy statics (RegExp.input, lastMatch, ...) belong to the realm, not to the
  // frozen constructor: PythonMonkey's start-up left a host path in them. An empty match
  // clears them, in both realms.
  new RegExp('(?:)').exec('');
  new debuggerGlobal.RegExp('(?:)').exec('');
  return seen.size;
})
