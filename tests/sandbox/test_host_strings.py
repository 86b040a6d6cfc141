"""Texts handed from the worker's Python to JS are copied, never wrapped as external strings.

PythonMonkey wraps a Python str of 1- or 2-byte characters as a SpiderMonkey external string
and holds a reference to it until the string's finalizer runs; that finalizer scans a table
of every live external string, so a GC freeing thousands of them stalled a busy worker for
150-500 ms (p99 of every API request). ``worker.to_js`` marks a text so that PythonMonkey
copies it instead. The checks run PythonMonkey in a child process: the test process never
imports it (one realm per process, and it holds the GIL while JS runs).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import orjson
import pytest

from fazt.sandbox.worker import COPY_MAX_CHARS, to_js

PROBE = textwrap.dedent("""
    import sys, orjson
    import pythonmonkey as pm
    from fazt.sandbox.worker import to_js

    keep = pm.eval("(function (text) { globalThis.kept = text; return text.length; })")
    cut = pm.eval("(function (text) { return text.slice(0, -2); })")
    texts = orjson.loads(sys.stdin.buffer.read())
    out = []
    for text in texts:
        plain = "".join([text, ""])            # fresh objects: no interned literal
        marked = to_js("".join([text, ""]))
        before = (sys.getrefcount(plain), sys.getrefcount(marked))
        keep(plain)
        keep(marked)
        after = (sys.getrefcount(plain), sys.getrefcount(marked))
        out.append({"plain_held": after[0] - before[0], "marked_held": after[1] - before[1],
                    "round_trip": str(cut(marked))})
    sys.stdout.buffer.write(orjson.dumps(out))
""")

TEXTS = ['{"a":1}', "é" * 40, "ß—中文" * 10, "emoji 😀 at the end 😀", "", "x" * 60_000,
         "é" * (COPY_MAX_CHARS + 1), "ß" * 100_000 + "中"]


@pytest.fixture(scope="module")
def probed() -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-c", PROBE], input=orjson.dumps(TEXTS),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return orjson.loads(done.stdout)


def test_an_unmarked_text_is_held_by_js(probed: list[dict[str, object]]) -> None:
    # The hazard itself: if PythonMonkey stops wrapping Python strings, the mark is no longer
    # needed (and this test says so).
    held = [p["plain_held"] for p, text in zip(probed, TEXTS, strict=True)
            if text and max(text) <= "\uffff"]
    assert held and all(h == 1 for h in held), held


def test_a_marked_text_is_copied_unless_long(probed: list[dict[str, object]]) -> None:
    # A long text stays external (a copy costs several times its size): few such texts exist,
    # and the finalizer's cost grows with their number, not their size.
    assert [p["marked_held"] for p in probed] == \
        [0 if len(text) <= COPY_MAX_CHARS else 1 for text in TEXTS]


def test_js_gets_the_exact_text_back(probed: list[dict[str, object]]) -> None:
    assert [p["round_trip"] for p in probed] == TEXTS


def test_the_mark_makes_a_short_text_four_byte() -> None:
    assert max(to_js("abc")) > "\uffff"
    assert to_js("abc")[:-1] == "abc"
    long = "a" * (COPY_MAX_CHARS + 1)
    assert max(to_js(long)) < "\u0100" and to_js(long)[:-2] == long
