"""Serverless JS: locked-down PythonMonkey worker processes (DESIGN.md section 3).

    Sandbox         the service: per-app pools of workers, spares, memory bound, eviction
    WorkerProcess   one worker seen from the server (pipes, routing, kill)
    worker          the worker process itself (``python -m fazt.sandbox.worker``)

This package never imports the HTTP layer.
"""

from fazt.sandbox._modules import exports_handler as exports_handler
from fazt.sandbox._pool import AppCode as AppCode
from fazt.sandbox._pool import CodeLoader as CodeLoader
from fazt.sandbox._pool import Sandbox as Sandbox
from fazt.sandbox._pool import SandboxSettings as SandboxSettings
from fazt.sandbox._pool import process_rss as process_rss
from fazt.sandbox._process import CapabilityHost as CapabilityHost
from fazt.sandbox._process import JsOutcome as JsOutcome
from fazt.sandbox._process import JsRequest as JsRequest
from fazt.sandbox._process import LogSink as LogSink

__all__ = ["AppCode", "CapabilityHost", "CodeLoader", "JsOutcome", "JsRequest", "LogSink",
           "Sandbox", "SandboxSettings", "exports_handler", "process_rss"]
