"""The wire between the server and a JS worker: length-prefixed frames over pipes.

A frame is ``u32 total length | u32 header length | header JSON | body bytes``. The header is
a small JSON object whose ``t`` names the message; the body is opaque bytes (JSON text that is
handed to JS unparsed, or a log line), so neither side parses a payload twice.

    server -> worker   load {main, memory_mb, granted}  body: {"files": {path: text}}
                       req {id, end_at, budget_at, slice_ms}  body: request JSON
                                                        (*_at: CLOCK_MONOTONIC seconds)
                       res {cid, ok}                    body: result JSON ("" = undefined)
                       cancel {id}
    worker -> server   ready {pid}
                       loaded {ok, error?}
                       log {rid, level}                 body: the line (UTF-8)
                       call {rid, cid}                  body: [cap, method, args] JSON
                       done {id, ok, js_ms}             body: response or error JSON
                       fail {id, code, js_ms}           (js_timeout, js_memory)
                       poisoned {reason}                (out of memory: retire me)

Only JSON and bytes cross: never a Python object, never a callable.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEAD = struct.Struct(">II")


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    total = _HEAD.size + len(head) + len(body)
    if total > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {total} bytes is over the {MAX_FRAME_BYTES} limit")
    return _HEAD.pack(total, len(head)) + head + body


class FrameReader:
    """Accumulates bytes and yields complete ``(header, body)`` frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEAD.size:
            total, head_len = _HEAD.unpack_from(self._buffer)
            if total > MAX_FRAME_BYTES or head_len > total - _HEAD.size:
                raise ProtocolError(f"bad frame header (total={total}, header={head_len})")
            if len(self._buffer) < total:
                break
            head = bytes(self._buffer[_HEAD.size:_HEAD.size + head_len])
            body = bytes(self._buffer[_HEAD.size + head_len:total])
            del self._buffer[:total]
            try:
                header = orjson.loads(head)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"frame header is not JSON: {exc}") from exc
            if not isinstance(header, dict) or not isinstance(header.get("t"), str):
                raise ProtocolError("frame header has no type")
            frames.append((header, body))
        return frames
