"""Turn an app's ``api/`` files into CommonJS module functions the worker can evaluate.

PythonMonkey evaluates scripts, not ES modules, so ES module syntax is rewritten to CommonJS
statement by statement, keeping every line where it was (error lines stay right):

    import x from "./a.js"              const x = __default(require("./a.js"));
    import {a, b as c} from "./a.js"    const {a, b: c} = require("./a.js");
    import * as ns from "./a.js"        const ns = require("./a.js");
    import "./a.js"                     require("./a.js");
    export default <expression>         module.exports.default = <expression>
    export default function f() {}      function f() {}         (+ exports.default = f at the end)
    export default class C {}           class C {}              (+ exports.default = C at the end)
    export function f / class C         function f / class C    (+ exports.f = f at the end)
    export const a = 1, b = 2           const a = 1, b = 2      (+ exports.a = a ... at the end)
    export {a, b as c}                  (exports.a = a; exports.c = b at the end)
    export * from "./a.js"              __reexport(require("./a.js"));   (all but default)
    export {a as b} from "./a.js"       exports.b = require("./a.js").a;

Only statements that begin a line are rewritten. Dynamic ``import()`` is not available.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODULE_WRAPPER = "(function (exports, require, module, __filename, __dirname) {"
GO_MODULE_WRAPPER = ("(function (exports, require, module, __filename, __dirname, request, "
                     "respond, fazt, __fazt_scope) { with (__fazt_scope) {")
"""A module of an app written for the Go fazt: it sees the request's globals too, and its
undeclared assignments land in a scope of its own (see go_compat.js)."""
_NAME = r"[A-Za-z_$][\w$]*"
_SPEC = r"""(?P<q>['"])(?P<spec>[^'"\n]+)(?P=q)"""
_ESM_LINE = re.compile(r"^[ \t]*(?:import[\s{*'\"]|export[\s{*])", re.M)
_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)import\s+(?:(?P<clause>[^;'\"]*?)\s+from\s+)?" + _SPEC + r"[ \t]*;?",
    re.M | re.S)
_EXPORT_FROM = re.compile(
    r"^(?P<indent>[ \t]*)export\s+(?:\*|\{(?P<names>[^}]*)\})\s+from\s+" + _SPEC + r"[ \t]*;?",
    re.M)
_EXPORT_LIST = re.compile(r"^(?P<indent>[ \t]*)export\s*\{(?P<names>[^}]*)\}[ \t]*;?", re.M)
_EXPORT_DEFAULT = re.compile(r"^(?P<indent>[ \t]*)export\s+default\s+", re.M)
_EXPORT_DEFAULT_DECL = re.compile(
    r"^(?P<indent>[ \t]*)export\s+default\s+"
    r"(?P<kind>(?:async\s+)?function(?:\s*\*\s*|\s+)|class\s+)(?P<name>" + _NAME + ")", re.M)
_PRELUDE = ("const __default = (m) => (m && m.__esModule) ? m.default : m; "
            "const __reexport = (m) => { if (m) for (const k of Object.keys(m)) "
            "if (k !== 'default' && k !== '__esModule') exports[k] = m[k]; }; ")
_EXPORT_DECL = re.compile(
    r"^(?P<indent>[ \t]*)export\s+(?P<kind>(?:async\s+)?function\s*\*?|class|const|let|var)\s+",
    re.M)


class ModuleSyntaxError(ValueError):
    """An ES module statement fazt cannot rewrite; the message names file and line."""


@dataclass(frozen=True)
class CompiledSource:
    path: str
    source: str        # CommonJS function source, same line numbers as the original


def is_es_module(source: str) -> bool:
    return _ESM_LINE.search(source) is not None


_COMMONJS_EXPORT = re.compile(r"\b(?:module\s*\.\s*exports\b|exports\s*[.\[])")


def exports_handler(source: str) -> bool:
    """Whether ``api/main.js`` exports something (ES ``export`` or CommonJS ``exports``), as a
    fazt handler module does. A script that does not is one written for the Go fazt, whose
    main.js ran as a script with ``request``/``respond`` globals (a mention of
    ``module.exports`` in its comments makes it look like a module)."""
    return is_es_module(source) or _COMMONJS_EXPORT.search(source) is not None


def wrap(path: str, source: str) -> CompiledSource:
    """The module function source for one ``api/*.js`` file."""
    if is_es_module(source):
        source = to_commonjs(path, source)
    return CompiledSource(path=path, source=f"{MODULE_WRAPPER}{source}\n}})")


def wrap_go(path: str, source: str) -> CompiledSource:
    """A module of a Go-compatibility app (no ES module syntax: the Go fazt had none)."""
    return CompiledSource(path=path, source=f"{GO_MODULE_WRAPPER}{source}\n}}}})")


def to_commonjs(path: str, source: str) -> str:
    tail: list[str] = ["exports.__esModule = true;"]

    def line_of(pos: int) -> int:
        return source.count("\n", 0, pos) + 1

    def keep_lines(text: str, replacement: str) -> str:
        return replacement + "\n" * text.count("\n")

    def on_import(m: re.Match[str]) -> str:
        spec = m.group("spec")
        req = f"require({spec!r})".replace("'", '"')
        clause = (m.group("clause") or "").strip()
        if not clause:
            return keep_lines(m.group(0), f"{m.group('indent')}{req};")
        parts: list[str] = []
        default, _, rest = clause.partition(",") if not clause.startswith(("{", "*")) \
            else ("", "", clause)
        default = default.strip()
        rest = rest.strip()
        if default:
            if not re.fullmatch(_NAME, default):
                raise ModuleSyntaxError(f"{path}:{line_of(m.start())}: cannot read import "
                                        f"{clause!r}")
            parts.append(f"const {default} = __default({req});")
        if rest.startswith("*"):
            ns = re.fullmatch(r"\*\s*as\s+(" + _NAME + ")", rest)
            if not ns:
                raise ModuleSyntaxError(f"{path}:{line_of(m.start())}: cannot read import "
                                        f"{clause!r}")
            parts.append(f"const {ns.group(1)} = {req};")
        elif rest.startswith("{"):
            parts.append(f"const {{{_rename_list(path, line_of(m.start()), rest, ': ')}}} "
                         f"= {req};")
        elif rest:
            raise ModuleSyntaxError(f"{path}:{line_of(m.start())}: cannot read import "
                                    f"{clause!r}")
        return keep_lines(m.group(0), m.group("indent") + " ".join(parts))

    def on_export_from(m: re.Match[str]) -> str:
        req = f'require("{m.group("spec")}")'
        names = m.group("names")
        if names is None:
            return f"{m.group('indent')}__reexport({req});"
        pairs = _pairs(path, line_of(m.start()), names)
        binds = " ".join(f"exports.{alias} = {req}.{name};" for name, alias in pairs)
        return keep_lines(m.group(0), m.group("indent") + binds)

    def on_export_list(m: re.Match[str]) -> str:
        for name, alias in _pairs(path, line_of(m.start()), m.group("names")):
            tail.append(f"exports.{alias} = {name};")
        return keep_lines(m.group(0), m.group("indent"))

    def on_export_decl(m: re.Match[str]) -> str:
        kind = m.group("kind")
        after = source[m.end():]
        if kind in ("const", "let", "var"):
            names = _declared_names(path, line_of(m.start()), after)
        else:
            name = re.match(_NAME, after)
            if not name:
                raise ModuleSyntaxError(f"{path}:{line_of(m.start())}: export {kind} needs a "
                                        "name")
            names = [name.group(0)]
        tail.extend(f"exports.{n} = {n};" for n in names)
        return f"{m.group('indent')}{kind} "

    def on_export_default_decl(m: re.Match[str]) -> str:
        # A named default function or class is also a binding of the module's scope.
        if m.group("name") == "extends":          # export default class extends Base {}
            return m.group(0)
        tail.append(f"exports.default = {m.group('name')};")
        return f"{m.group('indent')}{m.group('kind')}{m.group('name')}"

    out = _IMPORT.sub(on_import, source)
    source = out
    out = _EXPORT_FROM.sub(on_export_from, source)
    source = out
    out = _EXPORT_LIST.sub(on_export_list, source)
    source = out
    out = _EXPORT_DECL.sub(on_export_decl, source)
    source = out
    out = _EXPORT_DEFAULT_DECL.sub(on_export_default_decl, source)
    source = out
    out = _EXPORT_DEFAULT.sub(lambda m: f"{m.group('indent')}module.exports.default = ", source)
    return _PRELUDE + out + "\n" + " ".join(tail)


def _pairs(path: str, line: int, names: str) -> list[tuple[str, str]]:
    pairs = []
    for item in names.split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(rf"({_NAME}|default)(?:\s+as\s+({_NAME}|default))?", item)
        if not m:
            raise ModuleSyntaxError(f"{path}:{line}: cannot read export/import name {item!r}")
        pairs.append((m.group(1), m.group(2) or m.group(1)))
    return pairs


def _rename_list(path: str, line: int, braces: str, sep: str) -> str:
    inner = braces.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise ModuleSyntaxError(f"{path}:{line}: cannot read import list {braces!r}")
    pairs = _pairs(path, line, inner[1:-1])
    return ", ".join(name if name == alias else f"{name}{sep}{alias}" for name, alias in pairs)


def _declared_names(path: str, line: int, after: str) -> list[str]:
    """Names bound by ``const a = 1, b = f(x, y)`` (simple identifiers only)."""
    m = re.match(_NAME, after)
    if not m:
        raise ModuleSyntaxError(f"{path}:{line}: export of a destructuring declaration is not "
                                "supported; declare the names, then `export {a, b}`")
    names = [m.group(0)]
    depth = 0
    i = m.end()
    in_string: str | None = None
    while i < len(after):
        c = after[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == in_string:
                in_string = None
        elif c in "'\"`":
            in_string = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ";" or (c == "\n" and depth == 0 and not after[i + 1:].lstrip(" \t")
                          .startswith(",")):
            break
        elif c == "," and depth == 0:
            nxt = re.match(r"\s*(" + _NAME + ")", after[i + 1:])
            if nxt:
                names.append(nxt.group(1))
        i += 1
    return names
