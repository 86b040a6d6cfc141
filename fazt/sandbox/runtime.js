// The worker's JS runtime: module loader, request dispatch, capability stubs, console.
//
// Evaluated once per worker, before the lockdown and before any app code. It receives the
// host functions (Python, built once per worker; they take and return strings and numbers
// only) and returns the entry points the Python side calls. Nothing here is reachable from
// app code except what is handed to the handler: the request object and the frozen `caps`.
(function (host) {
  'use strict';
  const { send, call, callSync, remaining, done, fill } = host;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const freeze = Object.freeze;
  const MAX_LOG_CHARS = 8192;
  const LONG_STRING = 65536;     // a string argument this long travels beside the JSON

  // Every text the host hands over (a request, a capability result, a host function's
  // answer) ends in one character beyond U+FFFF, which makes PythonMonkey copy it into a
  // plain JS string instead of wrapping Python's memory in an external string, whose
  // finalizer is O(live external strings): a GC freeing thousands of them stalled the
  // worker for 150-500 ms (worker.py, to_js). Two UTF-16 units, cut off here.
  function fromHost(text) { return text.slice(0, -2); }

  // JSON text for the server: a lone surrogate would make it unreadable there (a handler
  // returning or throwing one looked like a crashed worker), so strings are made well formed.
  const wellFormed = function (key, value) {
    return typeof value === 'string' ? value.toWellFormed() : value;
  };
  function toServer(value) { return stringify(value, wellFormed); }

  // Capability arguments: as toServer, but NaN and Infinity (which JSON would turn into null,
  // so kv.increment('n', NaN) would add 1) are refused.
  // Bytes (a Uint8Array, another typed array or DataView, an ArrayBuffer) inside an argument
  // become {"$bytes": base64} (blobs.put reads them so; capCall sends a top-level one apart).
  const argument = function (key, value) {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      const error = new TypeError(`capability arguments must be JSON: ${value} is not`);
      error.code = 'capability_error';
      throw error;
    }
    if (typeof value === 'string') return value.toWellFormed();
    const bytes = asBytes(value);
    return bytes === null ? value : { $bytes: bytesToBase64(bytes) };
  };

  function asBytes(value) {
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (ArrayBuffer.isView(value)) {
      return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    }
    return null;
  }

  // -- base64 (pure JS: PythonMonkey's atob/btoa are Python functions whose errors carry
  //    host paths) -------------------------------------------------------------------------
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const B64_INDEX = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

  // In chunks: appending four characters at a time builds a rope of millions of nodes, which
  // ran a 128 MB worker out of memory on a 4 MB blob.
  const B64_CODES = new Uint8Array(64);
  for (let i = 0; i < 64; i++) B64_CODES[i] = B64.charCodeAt(i);
  const B64_CHUNK = 3 * 4096;
  const fromCharCode = String.fromCharCode;

  function bytesToBase64(bytes) {
    const parts = [];
    const codes = new Uint16Array(B64_CHUNK / 3 * 4);
    for (let start = 0; start < bytes.length; start += B64_CHUNK) {
      const end = Math.min(start + B64_CHUNK, bytes.length);
      let o = 0, i = start;
      for (; i + 2 < end; i += 3) {
        const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
        codes[o++] = B64_CODES[n >> 18]; codes[o++] = B64_CODES[(n >> 12) & 63];
        codes[o++] = B64_CODES[(n >> 6) & 63]; codes[o++] = B64_CODES[n & 63];
      }
      if (i < end) {                 // the last 1 or 2 bytes (only in the last chunk)
        const n = (bytes[i] << 16) | ((i + 1 < end ? bytes[i + 1] : 0) << 8);
        codes[o++] = B64_CODES[n >> 18]; codes[o++] = B64_CODES[(n >> 12) & 63];
        codes[o++] = i + 1 < end ? B64_CODES[(n >> 6) & 63] : 61;   // '='
        codes[o++] = 61;
      }
      parts.push(fromCharCode.apply(null, codes.subarray(0, o)));
    }
    return parts.join('');
  }

  function base64ToBytes(text) {
    const clean = String(text).replace(/[\t\n\f\r ]+/g, '').replace(/={1,2}$/, '');
    if (clean.length % 4 === 1) throw new TypeError('invalid base64');
    const out = new Uint8Array(Math.floor(clean.length * 3 / 4));
    let bits = 0, value = 0, o = 0;
    for (let i = 0; i < clean.length; i++) {
      const d = clean.charCodeAt(i) < 256 ? B64_INDEX[clean.charCodeAt(i)] : -1;
      if (d < 0) throw new TypeError('invalid base64 character');
      value = (value << 6) | d;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[o++] = (value >> bits) & 255;
      }
    }
    return out;
  }

  function atob(text) {
    const bytes = base64ToBytes(text);
    let out = '';
    for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]);
    return out;
  }

  function btoa(text) {
    text = String(text);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 255) throw new TypeError('btoa: the string has characters outside Latin-1');
      bytes[i] = c;
    }
    return bytesToBase64(bytes);
  }

  // -- UTF-8 ---------------------------------------------------------------------------------
  function utf8Encode(text) {
    const out = [];
    for (let i = 0; i < text.length; i++) {
      let c = text.codePointAt(i);
      if (c > 0xffff) i++;
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63),
        0x80 | (c & 63));
    }
    return new Uint8Array(out);
  }

  // Invalid sequences become U+FFFD as TextDecoder makes them: one per maximal subpart (a
  // truncated sequence is one U+FFFD, and decoding resumes at the byte that broke it). Built
  // in chunks of UTF-16 code units (a string per character, or an array of numbers, runs a
  // worker out of memory on a few MB).
  function utf8Decode(bytes) {
    const parts = [];
    const units = new Uint16Array(8192 + 2);
    let o = 0;
    for (let i = 0; i < bytes.length;) {
      const b = bytes[i];
      let c = 0xfffd, n = 1;
      if (b < 0x80) c = b;
      else {
        // the length the lead byte announces, and the range its second byte must be in
        let need = 0, low = 0x80, high = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) low = 0xa0; else if (b === 0xed) high = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) low = 0x90; else if (b === 0xf4) high = 0x8f;
        }
        let value = need === 1 ? b & 31 : need === 2 ? b & 15 : b & 7;
        let k = 0;
        while (k < need && i + 1 + k < bytes.length) {
          const next = bytes[i + 1 + k];
          if (k === 0 ? (next < low || next > high) : (next & 0xc0) !== 0x80) break;
          value = (value << 6) | (next & 63);
          k++;
        }
        if (need > 0 && k === need) c = value;
        n = 1 + k;   // complete: the whole sequence; broken: the maximal subpart
      }
      if (c > 0xffff) {
        units[o++] = 0xd800 + ((c - 0x10000) >> 10);
        units[o++] = 0xdc00 + ((c - 0x10000) & 1023);
      } else units[o++] = c;
      if (o >= 8192) { parts.push(fromCharCode.apply(null, units.subarray(0, o))); o = 0; }
      i += n;
    }
    parts.push(fromCharCode.apply(null, units.subarray(0, o)));
    return parts.join('');
  }

  // -- logging -------------------------------------------------------------------------------
  function format(args) {
    let text = '';
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      let part;
      if (typeof a === 'string') part = a;
      else if (a instanceof Error) part = (a.stack ? `${a.name}: ${a.message}\n${a.stack}` : String(a));
      else {
        try { part = stringify(a); } catch (e) { part = undefined; }
        if (part === undefined) part = String(a);
      }
      text += (i ? ' ' : '') + part;
      if (text.length > MAX_LOG_CHARS) break;
    }
    return text.length > MAX_LOG_CHARS ? text.slice(0, MAX_LOG_CHARS) + '…' : text;
  }

  function logger(level) {
    return function () { send('log', toServer([level, format(arguments)])); };
  }

  const log = freeze({
    debug: logger('debug'), info: logger('info'), warn: logger('warn'), error: logger('error'),
  });
  const console = freeze({
    log: log.info, info: log.info, debug: log.debug, warn: log.warn, error: log.error,
    trace: log.debug,
  });

  // -- capability calls: one frozen object per worker; Python attributes each call to the
  //    request whose code is running --------------------------------------------------------
  const pending = new Map();

  // [JSON text, side bytes or string, its argument's index (-1: none), whether it is text].
  // The first bytes argument (blobs.put's data) or long string goes beside the JSON: the host
  // function gets bytes as a memoryview of the array's memory (no copy, no base64), a string
  // as a string (JSON.stringify of a 1.5 MB string can fail in a 128 MB worker).
  function encodeCall(cap, method, args) {
    const adapt = ADAPT[cap + '.' + method];
    if (adapt !== undefined) args = adapt(args);
    let binary = '', at = -1, text = false;
    for (let i = 0; i < args.length && at < 0; i++) {
      const bytes = asBytes(args[i]);
      if (bytes !== null) { binary = bytes; at = i; args[i] = null; }
      else if (typeof args[i] === 'string' && args[i].length > LONG_STRING) {
        binary = args[i].toWellFormed(); at = i; text = true; args[i] = null;
      }
    }
    return [stringify([cap, method, args], argument), binary, at, text];
  }

  function capCall(cap, method, args) {
    return new Promise(function (resolve, reject) {
      const [json, binary, at, text] = encodeCall(cap, method, args);
      const id = call(json, binary, at, text);
      if (typeof id === 'string') {          // refused at once (no request, bad arguments)
        reject(makeError(parse(fromHost(id))));
        return;
      }
      pending.set(id, [resolve, reject, REVIVE[cap + '.' + method]]);
    });
  }

  // A call that blocks the worker until its result is in (the Go fazt's synchronous API).
  function capCallSync(cap, method, args) {
    const [json, binary, at, text] = encodeCall(cap, method, args);
    const reply = parse(fromHost(callSync(json, binary, at, text)));
    if (!reply.ok) throw makeError(reply.error);
    let data;
    if (reply.size >= 0) {
      data = new Uint8Array(reply.size);
      if (reply.size > 0 && !fill(data)) {
        throw makeError({ code: 'internal', message: 'capability result lost' });
      }
    }
    const revive = REVIVE[cap + '.' + method];
    return revive === undefined ? reply.value : revive(reply.value, data);
  }

  // Results with bytes (a blob's data): the worker hands them over as a Uint8Array.
  function blobResult(blob, data) {
    if (blob === null || blob === undefined) return null;
    blob.data = data;
    blob.text = function () { return utf8Decode(data); };
    return blob;
  }
  // net.fetch's answer: the body as a Uint8Array, read as text or JSON on demand.
  function netResponse(response, data) {
    response.bytes = function () { return data; };
    response.text = function () { return utf8Decode(data); };
    response.json = function () { return parse(utf8Decode(data)); };
    return freeze(response);
  }
  const REVIVE = freeze({ 'blobs.get': blobResult, 'blobs.user.get': blobResult,
    'net.fetch': netResponse });

  // net.fetch(url, {body, ...}): the body becomes the call's third argument, so that bytes
  // (and a long string) travel beside the JSON, as blobs.put's data does.
  function netFetchArgs(args) {
    if (args.length > 2) {
      const error = new TypeError('net.fetch takes (url, options): put the body in options.body');
      error.code = 'capability_error';
      throw error;
    }
    const options = args[1];
    if (options === null || typeof options !== 'object' || !('body' in options)) return args;
    const rest = Object.assign({}, options);
    const body = rest.body;
    delete rest.body;
    return [args[0], rest, body === undefined ? null : body];
  }
  const ADAPT = freeze({ 'net.fetch': netFetchArgs });

  function makeError(info) {
    const error = new Error(info.message);
    error.code = info.code;
    return error;
  }

  const budget = freeze({ remaining: function () { return remaining(); } });

  // `granted` maps each capability beyond log/budget to its method names (from the server);
  // every such method is an async RPC. A dotted name is a method of a nested object
  // ("user.get" is kv.user.get). `env` holds the values of the granted env names.
  function buildCaps(granted, env) {
    const caps = { log, budget };
    for (const name of Object.keys(granted)) {
      if (name === 'log' || name === 'budget' || name === 'env') continue;
      const methods = {};
      for (const method of granted[name]) {
        const path = method.split('.');
        let target = methods;
        for (const part of path.slice(0, -1)) target = target[part] || (target[part] = {});
        target[path[path.length - 1]] = function () {
          return capCall(name, method, Array.prototype.slice.call(arguments));
        };
      }
      caps[name] = deepFreeze(methods);
    }
    if (env !== null) caps.env = freeze(env);
    return freeze(caps);
  }

  function deepFreeze(object) {
    for (const key of Object.keys(object)) {
      if (typeof object[key] === 'object') deepFreeze(object[key]);
    }
    return freeze(object);
  }

  // -- modules -------------------------------------------------------------------------------
  const modules = new Map();   // path -> {compiled, module, loading}

  function dirname(path) {
    const i = path.lastIndexOf('/');
    return i < 0 ? '' : path.slice(0, i);
  }

  function resolvePath(from, spec) {
    if (typeof spec !== 'string' || !(spec.startsWith('./') || spec.startsWith('../'))) {
      throw new Error(`require(${stringify(String(spec))}): only the app's own modules under ` +
        'api/ can be loaded, by relative path (e.g. require("./lib.js"))');
    }
    const parts = dirname(from).split('/').filter(Boolean);
    for (const part of spec.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (parts.length <= 1) {
          throw new Error(`require(${stringify(spec)}): outside api/`);
        }
        parts.pop();
      } else parts.push(part);
    }
    const base = parts.join('/');
    for (const candidate of [base, base + '.js', base + '.json', base + '/index.js']) {
      if (modules.has(candidate)) return candidate;
    }
    throw new Error(`require(${stringify(spec)}): no module ${base} in api/`);
  }

  function requireFrom(from) {
    return function require(spec) {
      const path = resolvePath(from, spec);
      return load(path);
    };
  }

  function load(path) {
    const entry = modules.get(path);
    if (entry.module) return entry.module.exports;
    const module = { exports: {} };
    entry.module = module;
    if (entry.json !== undefined) {
      module.exports = parse(entry.json);
    } else {
      entry.compiled.call(module.exports, module.exports, requireFrom(path), module, path,
        dirname(path));
    }
    return module.exports;
  }

  // -- requests ------------------------------------------------------------------------------
  let handler = null;
  let caps = null;

  function buildRequest(raw) {
    const bodyB64 = raw.body_b64;
    const request = {
      method: raw.method, path: raw.path, query: raw.query, headers: raw.headers,
      cookies: raw.cookies, ip: raw.ip, requestId: raw.request_id, body: raw.body,
      bytes: function () {
        if (bodyB64 !== undefined && bodyB64 !== null) return base64ToBytes(bodyB64);
        if (typeof raw.text === 'string') return utf8Encode(raw.text);
        return new Uint8Array(0);
      },
      text: function () { return typeof raw.text === 'string' ? raw.text : null; },
    };
    return request;
  }

  const RESPONSE_KEYS = new Set(['status', 'headers', 'body', 'json', 'cookies']);

  function isResponseSpec(value) {
    const keys = Object.keys(value);
    if (!keys.every((k) => RESPONSE_KEYS.has(k))) return false;
    return 'body' in value || 'json' in value || typeof value.status === 'number';
  }

  function headerList(headers) {
    if (headers === undefined || headers === null) return [];
    if (typeof headers !== 'object') throw new TypeError('response headers must be an object');
    const out = [];
    for (const name of Object.keys(headers)) {
      const value = headers[name];
      if (Array.isArray(value)) for (const v of value) out.push([name, String(v)]);
      else out.push([name, String(value)]);
    }
    return out;
  }

  function bodyOf(body, out) {
    if (body === undefined || body === null) return;
    if (typeof body === 'string') out.body = body;
    else if (body instanceof Uint8Array) out.b64 = bytesToBase64(body);
    else if (body instanceof ArrayBuffer) out.b64 = bytesToBase64(new Uint8Array(body));
    else throw new TypeError('response body must be a string, Uint8Array or ArrayBuffer ' +
      '(use json: for objects)');
  }

  function normalize(value) {
    const out = { status: 200, headers: [] };
    if (value === undefined || value === null) {
      out.status = 204;
    } else if (typeof value === 'string') {
      out.body = value;
      out.type = 'text/plain; charset=utf-8';
    } else if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
      bodyOf(value, out);
      out.type = 'application/octet-stream';
    } else if (typeof value === 'object' && isResponseSpec(value)) {
      if (value.status !== undefined) out.status = value.status;
      out.headers = headerList(value.headers);
      if (value.json !== undefined) {
        out.body = stringify(value.json);
        out.type = 'application/json';
      } else {
        bodyOf(value.body, out);
        if (typeof value.body === 'string') out.type = 'text/plain; charset=utf-8';
        else if (out.b64 !== undefined) out.type = 'application/octet-stream';
      }
      if (value.cookies !== undefined) out.cookies = value.cookies;
    } else {
      const text = stringify(value);
      if (text === undefined) throw new TypeError(`the handler returned a ${typeof value}`);
      out.body = text;
      out.type = 'application/json';
    }
    return toServer(out);
  }

  // Must never throw: it runs in the handler's promise reactions, where a throw would leave
  // the request unanswered until its deadline. A thrown value may be hostile (a Proxy, an
  // Error with throwing getters).
  function describe(error) {
    try {
      if (error instanceof Error) {
        // Each property read once: a getter may answer differently the second time.
        const stack = error.stack;
        const code = error.code;
        return toServer({
          name: String(error.name), message: String(error.message).slice(0, 2000),
          stack: typeof stack === 'string' ? stack.slice(0, 8000) : '',
          code: typeof code === 'string' ? code.slice(0, 64) : null,
        });
      }
    } catch (e) { /* described as a thrown value below */ }
    let message;
    try { message = String(error); } catch (e) { message = '(unprintable value)'; }
    return toServer({ name: 'thrown value', message: message.slice(0, 2000), stack: '',
      code: null });
  }

  return {
    globals: { console, atob, btoa },

    // For the Go fazt compatibility runtime (go_compat.js), evaluated next; never reachable
    // from app code.
    internals: freeze({
      callSync: capCallSync, makeError, describe, done, log, console, toServer,
      bytesToBase64, base64ToBytes, utf8Encode, asBytes, headerList, fromHost,
    }),

    // Called by Python with a map of path -> compiled module function (or JSON text).
    load: function (compiled, jsonFiles, main, granted, env) {
      for (const path of Object.keys(compiled)) modules.set(path, { compiled: compiled[path] });
      for (const path of Object.keys(jsonFiles)) modules.set(path, { json: jsonFiles[path] });
      const exports = load(main);
      let fn = exports;
      if (typeof fn !== 'function' && fn && typeof fn.default === 'function') fn = fn.default;
      if (typeof fn !== 'function') {
        throw new TypeError(`${main} must export a function (module.exports = async ` +
          'function (request, caps) {...} or export default async function ...)');
      }
      handler = fn;
      caps = buildCaps(parse(granted), parse(env));
    },

    dispatch: function (rid, rawJson) {
      let request;
      try {
        request = buildRequest(parse(fromHost(rawJson)));
      } catch (e) {
        done(rid, false, describe(e));
        return;
      }
      Promise.resolve()
        .then(function () { return handler(request, caps); })
        .then(function (value) {
          let text;
          try { text = normalize(value); } catch (e) { done(rid, false, describe(e)); return; }
          done(rid, true, text);
        }, function (error) { done(rid, false, describe(error)); });
    },

    // `size`, when given, is the length of the result's bytes: they are copied by the host
    // into a Uint8Array made here (one that JS owns and its GC frees).
    deliver: function (id, ok, text, size) {
      const payload = fromHost(text);
      const entry = pending.get(id);
      if (entry === undefined) return;
      pending.delete(id);
      let data;
      if (size !== undefined) {
        data = new Uint8Array(size);
        if (size > 0 && !fill(data)) {
          entry[1](makeError({ code: 'internal', message: 'capability result lost' }));
          return;
        }
      }
      if (ok) {
        const value = payload === '' ? undefined : parse(payload);
        entry[0](entry[2] === undefined ? value : entry[2](value, data));
      }
      else entry[1](makeError(parse(payload)));
    },

    // `ids` is JSON text: iterating a Python list from JS makes PythonMonkey define a global,
    // which the frozen global refuses.
    forget: function (ids) {
      for (const id of parse(fromHost(ids))) pending.delete(id);
    },
  };
})
