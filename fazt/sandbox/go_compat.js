// The Go fazt compatibility runtime: runs an app written for the earlier Go fazt unchanged.
//
// Evaluated once per worker, after runtime.js and before the lockdown, with the runtime's
// internals; used only for a deploy the server marked "go" (its manifest has no
// "capabilities" key and api/main.js exports no handler). Such an api/main.js is a script,
// run afresh for each request with the Go fazt's globals in scope: `request`, `respond`,
// `fazt` and `require`. Its completion value (the value of the last expression statement
// run, e.g. `handler(request)`), or what a top-level `return` gives, is the response.
// Storage calls are synchronous, as in Go: each blocks the worker until the result is in
// (the pool gives such an app's workers one request at a time). The mapping to fazt's own
// capabilities is in docs/reference/go-compat.md.
(function (rt) {
  'use strict';
  const { callSync, makeError, describe, done, log, toServer, bytesToBase64, base64ToBytes,
    asBytes, headerList, fromHost } = rt;
  const freeze = Object.freeze;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const slice = Array.prototype.slice;
  const PAGE = 1000;                      // the most one list/find call returns
  const STDLIB = new Set(['lodash', 'cheerio', 'uuid', 'zod', 'marked', 'dayjs', 'validator']);
  const PROBE = 'throw __fazt_src;';

  // -- compiling api/main.js -------------------------------------------------------------
  // Sloppy-mode code (Go scripts are not strict), made by an indirect eval. The script runs
  // inside `with (scope)`: `scope` (makeScope) takes the script's top-level variables and the
  // names it assigns without declaring them (`total = 0`, `for (i = 0; ...)`), which would
  // otherwise vanish (the worker's global object is frozen) and then fail to read. In eval
  // mode the script is wrapped in a block, so that its function declarations are block
  // bindings, found before `scope`; a direct eval sees the request's globals as the enclosing
  // function's parameters.
  const PARAMS = 'request, respond, fazt, require, __fazt_scope';
  // The source is a const: a script that assigns to the name cannot change what later
  // requests run.
  const makeScript = (0, eval)('(function (__fazt_src) { const __fazt_code = __fazt_src; ' +
    'return function (' + PARAMS + ') { with (__fazt_scope) { return eval(__fazt_code); } ' +
    '}; })');

  // Names `scope` leaves alone: its code's parameters (api/main.js's, or a module's), and the
  // globals (JSON, Math, console...).
  const MAIN_NAMES = new Set(['request', 'respond', 'fazt', 'require', '__fazt_scope',
    '__fazt_src', '__fazt_code', 'arguments', 'eval']);
  const MODULE_NAMES = new Set([...MAIN_NAMES, 'exports', 'module', '__filename', '__dirname']);

  function makeScope(own) {
    const store = Object.create(null);
    return new Proxy(store, {
      has(target, key) {
        return typeof key === 'string' && !own.has(key) && !(key in globalThis);
      },
      get(target, key) { return typeof key === 'string' ? store[key] : undefined; },
      set(target, key, value) { store[key] = value; return true; },
    });
  }

  function compiles(body) {
    try { new Function(body); return true; } catch (e) { return false; }   // parses, runs nothing
  }

  // Text after the last `;` that is only blanks and comments: that `;` can go.
  const COMMENTS_ONLY = /^(?:\s|\/\/[^\n\r\u2028\u2029]*|\/\*[\s\S]*?\*\/)*$/;
  function withoutFinalSemicolon(text) {
    const at = text.lastIndexOf(';');
    if (at < 0 || !COMMENTS_ONLY.test(text.slice(at + 1))) return null;
    return text.slice(0, at) + text.slice(at + 1);
  }

  // The script as a function body that returns its last top-level statement, when that is
  // an expression statement: the last line start where everything before compiles as a body
  // and everything after as one expression. null when there is none. Lines that could
  // continue the line before (starting with ( [ + - / or `) or that start a declaration or a
  // block ({, function, async, class) are not taken: `function handler(req) {...}` at the end
  // must stay a declaration.
  function returnLastStatement(source) {
    const starts = [0];
    const breaks = /\r\n|[\n\r\u2028\u2029]/g;
    let m;
    while ((m = breaks.exec(source)) !== null) starts.push(m.index + m[0].length);
    for (let i = starts.length - 1, tried = 0; i >= 0 && tried < 200; i--) {
      const head = source.slice(0, starts[i]);
      const tail = source.slice(starts[i]);
      const first = tail.trimStart();
      if (first === '' || first.startsWith('//')) continue;
      tried++;
      if ('([+-/`{'.includes(first[0]) || /^(function|async|class|let)\b/.test(first) ||
          !compiles(head)) continue;
      for (const expr of [tail, withoutFinalSemicolon(tail)]) {
        if (expr !== null && compiles('return (' + expr + '\n)')) {
          return head + 'return (' + expr + '\n);';
        }
      }
      return null;                // the last statement is not an expression
    }
    return null;
  }

  // A SyntaxError as the app's author needs it: their file, line and column.
  function located(path, error, line1Offset, lineOffset = 0) {
    const line = error.lineNumber - lineOffset;
    const column = line === 1 ? error.columnNumber - line1Offset : error.columnNumber;
    return `${path}:${line}:${column}: SyntaxError: ${error.message}`;
  }

  // -> function (request, respond, fazt, require, scope) giving the response.
  //
  // A script that ends with an expression statement is compiled once as a function body that
  // returns it: the same value as the script's completion value (a script without a
  // top-level return runs to its end). A script with top-level returns (valid here, not in
  // the Go fazt) must be a function body too; if it does not end with an expression, falling
  // off its end gives undefined. Any other script keeps its exact completion value: a direct
  // eval for each request (SpiderMonkey does not cache the eval of a script with functions
  // in it: ~20 us per KB of script).
  function compileMain(path, source) {
    const url = '\n//# sourceURL=' + path;
    let topLevelReturn = false;
    try {
      makeScript(PROBE + source + url)(undefined, undefined, undefined, undefined, {});
    } catch (e) {
      if (e !== PROBE + source + url) {
        if (!(e instanceof SyntaxError)) throw e;
        if (!String(e.message).includes('return not in function')) {
          throw new Error(located(path, e, PROBE.length));
        }
        topLevelReturn = true;
      }
    }
    if (topLevelReturn && !compiles(source)) {
      // The probe stopped at the first top-level return: check all of it before it goes
      // into a wrapper it could otherwise close early.
      try { new Function(source); } catch (e) { throw new Error(located(path, e, 0, 2)); }
    }
    const body = returnLastStatement(source);
    if (body === null && !topLevelReturn) return makeScript('{' + source + '\n}' + url);
    const head = '(function (' + PARAMS + ') { with (__fazt_scope) {';
    try {
      return (0, eval)(head + (body === null ? source : body) + '\n} })' + url);
    } catch (e) {
      if (e instanceof SyntaxError) throw new Error(located(path, e, head.length));
      throw e;
    }
  }

  // -- request and response --------------------------------------------------------------
  // Go's canonical header case (Content-Type); the lowercase name works too, unlisted.
  function canonical(name) {
    return name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
  }

  function goRequest(raw) {
    const query = {};
    for (const key of Object.keys(raw.query)) {
      const value = raw.query[key];
      query[key] = Array.isArray(value) ? value[0] : value;
    }
    const headers = {};
    for (const name of Object.keys(raw.headers)) {
      headers[canonical(name)] = raw.headers[name];
      if (canonical(name) !== name) {
        Object.defineProperty(headers, name, { value: raw.headers[name], enumerable: false });
      }
    }
    let body = null;
    if (raw.method !== 'GET' && raw.method !== 'HEAD') {
      const type = String(raw.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
      if (type === 'application/json' || type.endsWith('+json')) {
        body = raw.body;                  // parsed by the server (malformed JSON: 400)
      } else if (raw.form !== undefined) {
        body = raw.form;
      }
    }
    const request = { method: raw.method, path: raw.path, query, headers, body };
    if (raw.files !== undefined) {
      const files = {};
      for (const field of Object.keys(raw.files)) {
        const f = raw.files[field];
        const bytes = base64ToBytes(f.data);
        files[field] = { name: f.name, type: f.type, size: bytes.length, data: bytes.buffer };
      }
      request.files = files;
    }
    return request;
  }

  const responses = new WeakSet();      // the objects respond() made
  let servedData = [];                  // s3.get data strings of this request (see bodyOf)

  const respond = freeze(function respond(status, body, headers) {
    let response;
    if (arguments.length === 0) response = { status: 200, body: null };
    else if (arguments.length === 1) {
      response = typeof status === 'number' ? { status } : { status: 200, body: status };
    } else response = { status, body, headers };
    responses.add(response);
    return response;
  });

  function isJsonType(type) {
    return /^application\/(.+\+)?json\b/i.test(type);
  }

  // The Go fazt wrote a string body raw; with a non-JSON content type it first base64-decoded
  // any string that parsed as base64, so that `respond(200, file.data, {"Content-Type":
  // file.mime})` served an s3 blob. Only the data of a blob this request read is decoded
  // here: a text body that happens to look like base64 is sent as it is.
  function bodyOf(body, type, out) {
    if (body === undefined || body === null) return;
    if (typeof body === 'string') {
      if (!isJsonType(type) && servedData.includes(body)) out.b64 = body;
      else out.body = body;
      return;
    }
    const bytes = asBytes(body);
    if (bytes !== null) { out.b64 = bytesToBase64(bytes); return; }
    out.body = stringify(body);
    if (out.body === undefined) out.body = '';
  }

  // A Set-Cookie header the Go fazt passed through becomes a cookie spec, which the server
  // checks like any app's (no Domain: an app's cookies are host-only). Only the attributes
  // the header names apply: no HttpOnly means none.
  function parseSetCookie(text) {
    const parts = String(text).split(';');
    const eq = parts[0].indexOf('=');
    const name = (eq < 0 ? parts[0] : parts[0].slice(0, eq)).trim();
    let value = eq < 0 ? '' : parts[0].slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const options = { value, httpOnly: false };
    let expires = null;
    for (const part of parts.slice(1)) {
      const at = part.indexOf('=');
      const key = (at < 0 ? part : part.slice(0, at)).trim().toLowerCase();
      const arg = at < 0 ? '' : part.slice(at + 1).trim();
      if (key === 'path') options.path = arg;
      else if (key === 'domain') options.domain = arg;
      else if (key === 'max-age') options.maxAge = Number(arg);
      else if (key === 'expires') expires = Date.parse(arg);
      else if (key === 'httponly') options.httpOnly = true;
      else if (key === 'secure') options.secure = true;
      else if (key === 'samesite') options.sameSite = arg;
    }
    if (options.maxAge === undefined && expires !== null && !Number.isNaN(expires)) {
      options.maxAge = Math.max(0, Math.floor((expires - Date.now()) / 1000));
    }
    return [name, options];
  }

  function toResponse(value) {
    let spec = value;
    if (value === undefined || value === null) spec = {};
    else if (typeof value !== 'object' || !(responses.has(value) ||
        (typeof value.status === 'number' && ('body' in value || 'headers' in value)))) {
      spec = { body: value };      // any other value is the body (a plain object as JSON)
    }
    const status = spec.status === undefined ? 200 : spec.status;
    const headers = [];
    let cookies;
    let type = 'application/json';
    for (const [name, v] of headerList(spec.headers)) {
      const lower = name.toLowerCase();
      if (lower === 'set-cookie') {
        const [cookie, options] = parseSetCookie(v);
        (cookies || (cookies = {}))[cookie] = options;
        continue;
      }
      if (lower === 'content-type') type = v;
      headers.push([name, v]);
    }
    const out = { status, headers, type };
    if (cookies !== undefined) out.cookies = cookies;
    if (status !== 204 && status !== 304) bodyOf(spec.body, type, out);
    return toServer(out);
  }

  // -- fazt.* ------------------------------------------------------------------------------
  function sync(cap, method) {
    return function () { return callSync(cap, method, slice.call(arguments)); };
  }

  const PROXIES = new WeakSet();

  function unavailable(name, why) {
    const proxy = new Proxy(freeze({}), {
      get(target, key) {
        // JSON.stringify and await look for these; they are not a use of the namespace.
        if (typeof key === 'symbol' || key === 'toJSON' || key === 'then') return undefined;
        throw makeError({ code: 'not_available',
          message: `${name}.${String(key)} is not available in fazt's Go compatibility mode` +
            (why ? ` (${why})` : '') });
      },
    });
    PROXIES.add(proxy);
    return proxy;
  }

  // Every page of a paginated list, as one array.
  function allItems(cap, method, prefix) {
    const out = [];
    let cursor = null;
    do {
      const page = callSync(cap, method, [prefix, cursor === null ? { limit: PAGE }
        : { limit: PAGE, cursor }]);
      for (const item of page.items) out.push(item);
      cursor = page.cursor;
    } while (cursor !== null && cursor !== undefined);
    return out;
  }

  function kvStore(p) {
    return freeze({
      get: sync('kv', p + 'get'),
      set(key, value, ttlMs) {
        const ttl = typeof ttlMs === 'number' && ttlMs > 0 ? Math.max(1, Math.round(ttlMs)) : 0;
        callSync('kv', p + 'set', ttl ? [key, value, { ttlMs: ttl }] : [key, value]);
      },
      delete: sync('kv', p + 'delete'),
      increment: sync('kv', p + 'increment'),
      list(prefix) {
        return allItems('kv', p + 'list', prefix === undefined ? '' : prefix).map(function (i) {
          const item = { key: i.key, value: i.value };
          if (i.expiresAt !== null) item.expiresAt = i.expiresAt;
          return item;
        });
      },
    });
  }

  // Go documents carry `id`; fazt's carry `_id`.
  function goDoc(doc) {
    if (doc === undefined || doc === null) return null;
    const out = {};
    for (const key of Object.keys(doc)) {
      if (key !== '_id' && key !== '_createdAt' && key !== '_updatedAt') out[key] = doc[key];
    }
    out.id = doc._id;
    out._createdAt = doc._createdAt;
    out._updatedAt = doc._updatedAt;
    return out;
  }

  function goQuery(query) {
    if (query === undefined || query === null) return {};
    if (typeof query !== 'object' || Array.isArray(query)) return query;  // fazt says why
    const out = {};
    for (const key of Object.keys(query)) {
      const value = query[key];
      if ((key === '$and' || key === '$or') && Array.isArray(value)) out[key] = value.map(goQuery);
      else out[key === 'id' ? '_id' : key] = value;
    }
    return out;
  }

  // Fields the server keeps (a document read back carries them): the Go fazt ignored them in
  // writes, so a document read, changed and written back works.
  const SERVER_FIELDS = new Set(['id', '_id', '_createdAt', '_updatedAt']);

  function withoutServerFields(fields) {
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) return fields;
    const out = {};
    for (const key of Object.keys(fields)) if (!SERVER_FIELDS.has(key)) out[key] = fields[key];
    return out;
  }

  // Keys without a `$` are an implicit $set, as in Go.
  function goChanges(changes) {
    if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) return changes;
    const out = {};
    const set = {};
    let plain = false;
    for (const key of Object.keys(changes)) {
      if (key.startsWith('$')) out[key] = withoutServerFields(changes[key]);
      else if (!SERVER_FIELDS.has(key)) { set[key] = changes[key]; plain = true; }
    }
    if (plain) out.$set = Object.assign({}, out.$set, set);
    return out;
  }

  function dsStore(p, legacy) {
    // Newest first unless {order: 'asc'}; every match unless {limit}, paging as needed.
    function find(collection, query, opts) {
      opts = opts || {};
      const sort = opts.sort !== undefined ? opts.sort
        : { _createdAt: String(opts.order).toLowerCase() === 'asc' ? 1 : -1 };
      const want = typeof opts.limit === 'number' && opts.limit > 0 ? opts.limit : Infinity;
      let offset = typeof opts.offset === 'number' && opts.offset > 0 ? opts.offset : 0;
      const q = goQuery(query);
      const out = [];
      while (out.length < want) {
        const limit = Math.min(PAGE, want - out.length);
        const page = callSync('docs', p + 'find', [collection, q, { sort, limit, offset }]);
        for (const doc of page) out.push(goDoc(doc));
        if (page.length < limit) break;
        offset += page.length;
      }
      return out;
    }

    const store = {
      insert(collection, doc) {
        const data = Object.assign({}, doc);
        const id = data.id;
        delete data.id;
        delete data._createdAt;
        delete data._updatedAt;
        if (typeof id === 'string' && id !== '') data._id = id;
        return callSync('docs', p + 'insert', [collection, data])._id;
      },
      find,
      findOne(collection, query) {
        if (typeof query === 'string') {
          return goDoc(callSync('docs', p + 'get', [collection, query]));
        }
        const found = find(collection, query, { limit: 1 });
        return found.length ? found[0] : null;
      },
      update(collection, query, changes) {
        return callSync('docs', p + 'update', [collection, goQuery(query), goChanges(changes)]);
      },
      delete(collection, query) {
        return callSync('docs', p + 'delete', [collection, goQuery(query)]);
      },
      count(collection, query) {
        return callSync('docs', p + 'count', [collection, goQuery(query)]);
      },
    };
    if (legacy) {
      // Keeps the newest keepN documents of the collection, deletes the rest.
      store.deleteOldest = function (collection, keepN) {
        const keep = typeof keepN === 'number' && keepN > 0 ? Math.floor(keepN) : 0;
        let deleted = 0;
        for (;;) {
          const old = callSync('docs', p + 'find', [collection, {},
            { sort: { _createdAt: -1 }, limit: PAGE, offset: keep }]);
          if (old.length === 0) return deleted;
          deleted += callSync('docs', p + 'delete',
            [collection, { _id: { $in: old.map((d) => d._id) } }]);
        }
      };
    }
    return freeze(store);
  }

  function blobPath(path) {
    return typeof path === 'string' ? path.replace(/^\/+/, '') : path;
  }

  function s3Store(p) {
    return freeze({
      put(path, data, mime) {
        callSync('blobs', p + 'put', [blobPath(path), data,
          { contentType: typeof mime === 'string' && mime ? mime : 'application/octet-stream' }]);
      },
      get(path) {
        const blob = callSync('blobs', p + 'get', [blobPath(path)]);
        if (blob === null || blob === undefined) return null;
        // `data` (base64, a third larger than the bytes) is made when first read.
        let data = null;
        const out = { mime: blob.contentType, size: blob.size, hash: blob.sha256 };
        Object.defineProperty(out, 'data', {
          enumerable: true,
          get() {
            if (data === null) {
              data = bytesToBase64(blob.data);
              blob.data = null;
              servedData.push(data);
              if (servedData.length > 4) servedData.shift();
            }
            return data;
          },
        });
        return out;
      },
      delete: sync('blobs', p + 'delete'),
      list(prefix) {
        return allItems('blobs', p + 'list', prefix === undefined ? '' : blobPath(prefix))
          .map((b) => ({ path: b.key, mime: b.contentType, size: b.size, updatedAt: b.updatedAt }));
      },
    });
  }

  // The Go fazt's fazt.net.fetch(url, {method, headers, body, auth}): synchronous; `auth`
  // names a secret; `body` is sent as String(body).
  function netFetch(url, options) {
    const given = options === undefined || options === null ? {} : options;
    const call = {};
    if (given.method !== undefined) call.method = given.method;
    if (given.headers !== undefined) call.headers = given.headers;
    if (given.auth !== undefined && given.auth !== null && given.auth !== '') {
      call.secret = given.auth;
    }
    if (given.body !== undefined && given.body !== null) call.body = String(given.body);
    return callSync('net', 'fetch', [url, call]);
  }

  // Every object and function reachable from `value` (proxies excepted: their targets are
  // frozen already), so that nothing a request changes is seen by the next one.
  function deepFreeze(value, seen = new Set()) {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null ||
        seen.has(value) || PROXIES.has(value)) return value;
    seen.add(value);
    freeze(value);
    for (const key of Object.getOwnPropertyNames(value)) {
      const desc = Object.getOwnPropertyDescriptor(value, key);
      if ('value' in desc) deepFreeze(desc.value, seen);
    }
    return value;
  }

  function buildFazt(info, env) {
    const values = env || {};
    const later = 'not part of fazt yet';
    const app = {
      id: info.app, name: info.app,
      kv: kvStore(''), ds: dsStore('', false), s3: s3Store(''),
      user: freeze({ kv: kvStore('user.'), ds: dsStore('user.', false), s3: s3Store('user.') }),
      media: unavailable('fazt.app.media', later),
    };
    return freeze({
      app: freeze(app),
      storage: freeze({ kv: kvStore(''), ds: dsStore('', true), s3: s3Store('') }),
      env: freeze({
        get(name, fallback) {
          return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : fallback;
        },
        has(name) { return Object.prototype.hasOwnProperty.call(values, name); },
      }),
      log,
      version: info.version,
      auth: unavailable('fazt.auth', later),
      realtime: unavailable('fazt.realtime', later),
      worker: unavailable('fazt.worker', later),
      net: freeze({ fetch: netFetch }),
      private: unavailable('fazt.private', later),
      image: unavailable('fazt.image', later),
    });
  }

  // -- modules (Go: `./x.js` and `x.js` are api/x.js; loaded once per request) ------------
  let modules = null;     // path -> compiled function or {json}
  let main = null;
  let fazt = null;

  function makeRequire(request) {
    const cache = new Map();
    return function require(spec) {
      if (typeof spec !== 'string') throw new TypeError('require() takes a path');
      if (STDLIB.has(spec)) {
        throw new Error(`require(${stringify(spec)}): the Go fazt's bundled ${spec} is not ` +
          `part of fazt; copy the library into api/ and require it by path`);
      }
      let path = 'api/' + spec.replace(/^(\.\/)+/, '');
      if (!modules.has(path)) {
        path = [path + '.js', path + '.json'].find((p) => modules.has(p)) || path;
      }
      if (!modules.has(path)) throw new Error(`require(${stringify(spec)}): no module ${path}`);
      if (cache.has(path)) return cache.get(path).exports;
      const module = { exports: {} };
      cache.set(path, module);
      const entry = modules.get(path);
      if (typeof entry === 'function') {
        entry.call(module.exports, module.exports, require, module, path,
          path.slice(0, path.lastIndexOf('/')), request, respond, fazt,
          makeScope(MODULE_NAMES));
      } else module.exports = parse(entry.json);
      return module.exports;
    };
  }

  return {
    // '' when loaded, else why not (a message for the app's log).
    load: function (compiled, jsonFiles, mainPath, mainSource, env, infoJson) {
      modules = new Map();
      for (const path of Object.keys(compiled)) modules.set(path, compiled[path]);
      for (const path of Object.keys(jsonFiles)) modules.set(path, { json: jsonFiles[path] });
      fazt = deepFreeze(buildFazt(parse(infoJson), parse(env)));
      try {
        main = compileMain(mainPath, String(mainSource));
      } catch (e) {
        return String(e && e.message);
      }
      return '';
    },

    dispatch: function (rid, rawJson) {
      servedData = [];
      let value;
      try {
        const request = goRequest(parse(fromHost(rawJson)));
        value = main(request, respond, fazt, makeRequire(request), makeScope(MAIN_NAMES));
      } catch (e) {
        done(rid, false, describe(e));
        return;
      }
      const finish = function (settled) {
        let text;
        try { text = toResponse(settled); } catch (e) { done(rid, false, describe(e)); return; }
        done(rid, true, text);
      };
      if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
        Promise.resolve(value).then(finish, function (e) { done(rid, false, describe(e)); });
      } else finish(value);
    },
  };
})
