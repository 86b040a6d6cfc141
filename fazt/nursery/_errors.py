"""The one exception the supervisor raises on purpose.

``ServiceCrashed`` is a process-level failure (the process is about to exit non-zero), not an
API error, so it deliberately stays outside the ``FaztError`` tree in ``fazt/errors.py``: no
HTTP handler should ever turn it into a response.
"""

from __future__ import annotations

__all__ = ["ServiceCrashed"]


class ServiceCrashed(Exception):
    """A service died fatally; every other service has been stopped in reverse order.

    ``service`` is the name of the service that died and ``__cause__`` is the exception it
    raised (a ``RuntimeError`` when it returned without being cancelled).
    """

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"service {service!r} {message}")
        self.service = service
