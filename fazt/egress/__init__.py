"""Outbound HTTP for the ``net`` capability: URL checks, the SSRF guard in the network layer,
and a client that re-checks every redirect and bounds both bodies.

Leaf package: never imports the HTTP layer (``fazt.http``, quart, hypercorn).
"""

from ._address import IPAddress, blocked_reason
from ._client import REFUSED_HEADERS, Egress, EgressSettings, FetchResponse, Headers, Prepare
from ._guard import GuardedBackend, Resolver, StaticResolver, SystemResolver
from ._url import Target, parse_url

__all__ = [
    "REFUSED_HEADERS",
    "Egress",
    "EgressSettings",
    "FetchResponse",
    "GuardedBackend",
    "Headers",
    "IPAddress",
    "Prepare",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "Target",
    "blocked_reason",
    "parse_url",
]
