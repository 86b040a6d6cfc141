"""Unit tests of the ES module -> CommonJS rewrite (fazt/sandbox/_modules.py).

Pure Python and fast; the behaviour of rewritten modules in a real worker is covered in
test_limits.py. Every rewrite form of the module docstring is pinned, and line numbers are
checked line by line: a marker comment on each original line must be on the same line after
the rewrite, since error messages and stack traces name the app's file and line.
"""

from __future__ import annotations

import re

import pytest

from fazt.sandbox._modules import _PRELUDE as PRELUDE
from fazt.sandbox._modules import (
    MODULE_WRAPPER,
    ModuleSyntaxError,
    is_es_module,
    to_commonjs,
    wrap,
)


def body_lines(out: str) -> list[str]:
    """The rewritten lines, without the prelude and without the export tail."""
    assert out.startswith(PRELUDE)
    return out[len(PRELUDE):].split("\n")[:-1]


def tail(out: str) -> str:
    return out.split("\n")[-1]


def assert_lines_kept(source: str, out: str) -> None:
    """Every `// @N` marker stays on line N, and nothing but the tail line is added."""
    assert out.count("\n") == source.count("\n") + 1
    lines = out.split("\n")
    for number, line in enumerate(source.split("\n"), start=1):
        for marker in re.findall(r"// @\d+", line):
            assert marker in lines[number - 1], (marker, lines[number - 1])


# -- is_es_module ------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    'import x from "./a.js"',
    "import {a} from './a.js'",
    "import * as ns from './a.js'",
    "import './a.js'",
    'import"./a.js"',
    "export default 1",
    "export const a = 1",
    "export {a}",
    "export{a}",
    "export * from './a.js'",
    "  export function f() {}",
    "const a = 1\nexport {a}",
])
def test_is_es_module(source: str) -> None:
    assert is_es_module(source)


@pytest.mark.parametrize("source", [
    "module.exports = async () => 'x'",
    "const s = 'import x from \"./a.js\"'",
    "f(); import('./a.js')",
    "const importer = 1; exports.x = importer",
    "importScripts('x')",
    "exports.exported = 1",
    "// a comment that mentions import x from './a.js' mid-line",
    "const t = `export default ${1}`",
])
def test_is_not_es_module(source: str) -> None:
    assert not is_es_module(source)


def test_commonjs_is_wrapped_unchanged() -> None:
    source = "const a = require('./a.js');\nmodule.exports = async () => a;\n"
    compiled = wrap("api/main.js", source)
    assert compiled.path == "api/main.js"
    assert compiled.source == f"{MODULE_WRAPPER}{source}\n}})"
    # The wrapper adds no line before the module's first line.
    assert "\n" not in MODULE_WRAPPER


def test_es_module_is_rewritten_then_wrapped() -> None:
    source = "import x from './a.js'\nexport default async () => x\n"
    compiled = wrap("api/main.js", source)
    assert compiled.source.startswith(MODULE_WRAPPER + PRELUDE)
    assert compiled.source.endswith("\n})")
    body = compiled.source[len(MODULE_WRAPPER + PRELUDE):]
    assert "import " not in body and "export " not in body
    assert compiled.source.count("\n") == source.count("\n") + 2


# -- every rewrite form of the docstring -------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ('import x from "./a.js"', 'const x = __default(require("./a.js"));'),
    ("import x from './a.js';", 'const x = __default(require("./a.js"));'),
    ('import {a, b as c} from "./a.js"', 'const {a, b: c} = require("./a.js");'),
    ('import {a} from "./a.js"', 'const {a} = require("./a.js");'),
    ('import * as ns from "./a.js"', 'const ns = require("./a.js");'),
    ('import "./a.js"', 'require("./a.js");'),
    ("import './a.js';", 'require("./a.js");'),
    ('import d, {a as b} from "./a.js"',
     'const d = __default(require("./a.js")); const {a: b} = require("./a.js");'),
    ('import d, * as ns from "./a.js"',
     'const d = __default(require("./a.js")); const ns = require("./a.js");'),
    ("export default 42", "module.exports.default = 42"),
    ("export default async function (req) {}", "module.exports.default = async function (req) {}"),
    ("export default function* () {}", "module.exports.default = function* () {}"),
    ("export default class extends Base {}", "module.exports.default = class extends Base {}"),
    ("export default functionName", "module.exports.default = functionName"),
    ("export default classy", "module.exports.default = classy"),
    ("export default async function handler(req) {}", "async function handler(req) {}"),
    ("export default function f() {}", "function f() {}"),
    ("export default function*gen() {}", "function*gen() {}"),
    ("export default class C extends Base {}", "class C extends Base {}"),
    ("export function f() {}", "function f() {}"),
    ("export async function g() {}", "async function g() {}"),
    ("export function* h() {}", "function* h() {}"),
    ("export class C {}", "class C {}"),
    ("export const a = 1, b = 2", "const a = 1, b = 2"),
    ("export let a = 1", "let a = 1"),
    ("export var a = 1", "var a = 1"),
    ('export * from "./a.js"', '__reexport(require("./a.js"));'),
    ('export * from "./a.js";', '__reexport(require("./a.js"));'),
    ('export {a as b} from "./a.js"', 'exports.b = require("./a.js").a;'),
    ('export {a, b as c} from "./a.js"',
     'exports.a = require("./a.js").a; exports.c = require("./a.js").b;'),
    ('export {default as d} from "./a.js"', 'exports.d = require("./a.js").default;'),
    ("export {a, b as c}", ""),
    ("export {a as default}", ""),
])
def test_rewrite_forms(source: str, expected: str) -> None:
    out = to_commonjs("api/m.js", source)
    assert body_lines(out) == [expected]
    assert "import " not in body_lines(out)[0] and "export " not in body_lines(out)[0]


@pytest.mark.parametrize(("source", "exported"), [
    ("export function f() {}", ["exports.f = f;"]),
    ("export async function g() {}", ["exports.g = g;"]),
    ("export function* h() {}", ["exports.h = h;"]),
    ("export class C {}", ["exports.C = C;"]),
    ("export const a = 1, b = 2", ["exports.a = a;", "exports.b = b;"]),
    ("export const a = f(1, 2), b = {x: [1, 2]}, c = 'x,y'",
     ["exports.a = a;", "exports.b = b;", "exports.c = c;"]),
    ("export let a = 1\nexport let b = 2", ["exports.a = a;", "exports.b = b;"]),
    ("export const a = 1\n  , b = 2", ["exports.a = a;", "exports.b = b;"]),
    ("export {a, b as c}", ["exports.a = a;", "exports.c = b;"]),
    ("export {a as default}", ["exports.default = a;"]),
    # A named default function or class is a binding of the module too (ESM semantics).
    ("export default async function handler(req) {}", ["exports.default = handler;"]),
    ("export default class C {}", ["exports.default = C;"]),
    ("export default function () {}", []),
    ("export default class extends B {}", []),
])
def test_exports_are_bound_in_the_tail(source: str, exported: list[str]) -> None:
    out = to_commonjs("api/m.js", source)
    assert tail(out) == " ".join(["exports.__esModule = true;", *exported])


def test_every_es_module_is_marked() -> None:
    # __default() of an ES module's require() gives its default export, of CommonJS the object.
    assert tail(to_commonjs("api/m.js", "export default 1")) == "exports.__esModule = true;"
    assert tail(to_commonjs("api/m.js", 'import "./a.js"')) == "exports.__esModule = true;"


def test_multi_line_import_braces() -> None:
    source = ('import {\n'
              '  a,\n'
              '  b as c,\n'
              '} from "./a.js";\n'
              'f(a, c) // @5\n')
    out = to_commonjs("api/m.js", source)
    lines = body_lines(out)
    assert lines[0] == 'const {a, b: c} = require("./a.js");'
    assert lines[1:4] == ["", "", ""]
    assert_lines_kept(source, out)
    assert lines[4] == "f(a, c) // @5"


def test_multi_line_default_and_named_import() -> None:
    source = 'import d, {\n  x as y\n} from "./a.js"\nuse(d, y) // @4'
    out = to_commonjs("api/m.js", source)
    assert body_lines(out)[0] == \
        'const d = __default(require("./a.js")); const {x: y} = require("./a.js");'
    assert_lines_kept(source, out)


def test_indentation_is_kept() -> None:
    out = to_commonjs("api/m.js", '  import x from "./a.js"\n\texport const a = 1')
    assert body_lines(out) == ['  const x = __default(require("./a.js"));', "\tconst a = 1"]


def test_line_numbers_are_preserved_across_every_form() -> None:
    source = "\n".join([
        'import x from "./a.js" // @1',
        "import {",
        "  a,",
        "  b as c",
        '} from "./b.js" // @5',
        'import * as ns from "./n.js" // @6',
        'import "./side.js" // @7',
        "export default function () {} // @8",
        "export function f() {} // @9",
        "export class C {} // @10",
        "export const k = 1, m = f(1,",
        "  2) // @12",
        "export {k as kk}",
        'export * from "./all.js" // @14',
        'export {a as aa} from "./e.js" // @15',
        "throw new Error('here') // @16",
        "",
    ])
    out = to_commonjs("api/m.js", source)
    assert_lines_kept(source, out)
    lines = out.split("\n")
    assert "throw new Error('here')" in lines[15]
    assert lines[-1].startswith("exports.__esModule = true;")


# -- what is left alone ------------------------------------------------------------------------

def test_strings_and_comments_mid_line_are_untouched() -> None:
    source = ("export const a = 1\n"
              "const s = \"x import y from 'z'\"; const t = 'export default 3'\n"
              "f(); import('./dyn.js') // @3\n"
              "// and a comment: import z from './z.js'; export {z}\n"
              "const u = `export * from './u.js'` // @5\n")
    out = to_commonjs("api/m.js", source)
    lines = body_lines(out)
    assert lines[1:] == source.split("\n")[1:]
    assert_lines_kept(source, out)
    assert tail(out) == "exports.__esModule = true; exports.a = a;"


def test_identifiers_starting_with_import_or_export_are_untouched() -> None:
    source = "export const a = 1\nimportant(1)\nexporter.run()\nimports = 2\n"
    out = to_commonjs("api/m.js", source)
    assert body_lines(out)[1:] == ["important(1)", "exporter.run()", "imports = 2", ""]


# -- errors name the file and line -------------------------------------------------------------

@pytest.mark.parametrize(("source", "line"), [
    ("\n\nexport const {a} = x\n", 3),
    ("export const [a, b] = x", 1),
    ("const x = 1\nexport let {a: {b}} = x", 2),
    ("\nimport {a-b} from './a.js'", 2),
    ("import x y from './a.js'", 1),
    ("\n\n\nimport * from './a.js'", 4),
    ("\nexport {a-b}", 2),
    ("export {a b} from './a.js'", 1),
    ("export function (x) {}", 1),
    ("\nexport class {}", 2),
])
def test_unsupported_forms_raise_with_file_and_line(source: str, line: int) -> None:
    with pytest.raises(ModuleSyntaxError) as info:
        to_commonjs("api/lib/m.js", source)
    assert str(info.value).startswith(f"api/lib/m.js:{line}: ")


def test_destructuring_export_message_says_what_to_do() -> None:
    with pytest.raises(ModuleSyntaxError, match=r"api/d\.js:3: export of a destructuring "
                       r"declaration is not supported"):
        to_commonjs("api/d.js", "\n\nexport const {a} = x\n")


def test_wrap_raises_module_syntax_error_too() -> None:
    with pytest.raises(ModuleSyntaxError, match=r"^api/main\.js:2: "):
        wrap("api/main.js", "const x = 1\nexport const {a} = x")
