"""Syntax-check an app's ``api/`` JavaScript without running it (``fazt app validate``).

``check_sources(files)`` runs ``python -I -m fazt.sandbox.check`` in a child process (the
server's own process never loads PythonMonkey) and returns one message per file that would
not load: an ES module statement fazt cannot rewrite, or a syntax error with its line.

Each module is compiled as the body of ``new Function(...)``: compiled, never called, and
unlike evaluating the worker's wrapper, a body cannot close the function early and run code.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

import orjson

from fazt.sandbox._modules import ModuleSyntaxError, is_es_module, to_commonjs

_CHECK_JS = """(function (src) {
  try {
    new Function('exports', 'require', 'module', '__filename', '__dirname', src);
    return '';
  } catch (e) {
    return String(e.name) + ': ' + String(e.message) + '\\u0000' + String(e.lineNumber - 2);
  }
})"""


def check_sources(files: Mapping[str, str], *, timeout_s: float = 60.0) -> list[str]:
    """Messages for the ``.js`` files of ``files`` (path -> text) that do not compile and the
    ``.json`` files that do not parse."""
    problems = []
    for path, text in sorted(files.items()):
        if path.endswith(".json"):
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                problems.append(f"{path}: not valid JSON: {exc}")
    sources = {path: text for path, text in files.items() if path.endswith(".js")}
    if not sources:
        return problems
    try:
        done = subprocess.run([sys.executable, "-I", "-m", "fazt.sandbox.check"],
                              input=orjson.dumps(sources), capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return [*problems, f"checking the JavaScript took longer than {timeout_s:.0f} s"]
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return [*problems,
                f"the JavaScript checker failed: {' '.join(tail) or done.returncode}"]
    errors: dict[str, str] = orjson.loads(done.stdout)
    return [*problems, *(errors[path] for path in sorted(errors))]


def _main() -> None:
    import pythonmonkey as pm

    compile_body = pm.eval(_CHECK_JS)
    sources: dict[str, str] = orjson.loads(sys.stdin.buffer.read())
    errors: dict[str, str] = {}
    for path, text in sources.items():
        try:
            body = to_commonjs(path, text) if is_es_module(text) else text
        except ModuleSyntaxError as exc:
            errors[path] = str(exc)
            continue
        result = str(compile_body(body))
        if result:
            message, _, line = result.partition("\x00")
            errors[path] = f"{path}:{line.split('.')[0]}: {message}"
    sys.stdout.buffer.write(orjson.dumps(errors))
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
