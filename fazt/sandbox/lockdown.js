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
  return seen.size;
})
