"""Turning the URL an app passes to ``net.fetch`` into a checked, normalised target.

What is refused here, before any lookup (``NetBadUrl``): schemes other than http and https,
credentials in the URL (secrets are for that), control characters and spaces, an empty host, a
port outside 1-65535, and hosts that a resolver would read as an IPv4 address without them
being one in the standard dotted form (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``):
glibc's resolver turns each into 127.0.0.1, and the allowlist would be judging a name the
connection does not use. An international host is turned into its IDNA ("xn--") form, which
is what the allowlist, the log and the resolver see. IP literals are parsed (``ip`` is set);
whether they may be fetched is the caller's policy, and the address guard judges them anyway.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import httpx

from fazt.errors import NetBadUrl

from ._address import IPAddress

MAX_URL_CHARS = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


@dataclass(frozen=True, kw_only=True)
class Target:
    """A URL ready to be fetched. ``host`` is lower case ASCII without a trailing dot (an IPv6
    literal without brackets); ``path`` has no query string (what logs may show)."""

    url: httpx.URL
    scheme: str
    host: str
    port: int
    path: str
    ip: IPAddress | None

    @property
    def origin(self) -> str:
        shown = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{shown}" + ("" if default else f":{self.port}")


def parse_url(text: object, *, base: httpx.URL | None = None) -> Target:
    """Check and normalise ``text``; relative to ``base`` when given (a redirect's Location)."""
    if not isinstance(text, str) or not text:
        raise NetBadUrl("the URL must be a non-empty string")
    if len(text) > MAX_URL_CHARS:
        raise NetBadUrl(f"the URL is over {MAX_URL_CHARS} characters")
    if _BAD_CHARS.search(text):
        raise NetBadUrl("the URL contains spaces or control characters")
    try:
        url = httpx.URL(text) if base is None else base.join(text)
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise NetBadUrl(f"the URL cannot be parsed: {exc}") from None
    scheme = url.scheme
    if not scheme:
        raise NetBadUrl("the URL must be absolute (http://... or https://...)")
    if scheme not in DEFAULT_PORTS:
        raise NetBadUrl(f"only http and https URLs can be fetched, not {scheme!r}")
    if url.userinfo:
        raise NetBadUrl("credentials in the URL are not allowed; store them as a secret")
    host, ip = _host(url)
    port = url.port if url.port is not None else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise NetBadUrl(f"port {port} is out of range")
    url = url.copy_with(host=host, fragment=None)
    return Target(url=url, scheme=scheme, host=host, port=port, path=url.path or "/", ip=ip)


def _host(url: httpx.URL) -> tuple[str, IPAddress | None]:
    raw = url.raw_host.decode("ascii", "replace").lower()
    if not raw:
        raise NetBadUrl("the URL has no host")
    if ":" in raw:      # httpx keeps IPv6 literals without their brackets
        try:
            address = ipaddress.IPv6Address(raw)
        except ValueError:
            raise NetBadUrl(f"{raw!r} is not a valid IPv6 address") from None
        if address.scope_id:
            raise NetBadUrl("scoped IPv6 addresses cannot be fetched")
        return str(address), address
    host = raw[:-1] if raw.endswith(".") else raw
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise NetBadUrl(f"{raw[:300]!r} is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            v4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise NetBadUrl(f"{raw!r} reads as an IPv4 address in a non-standard form; write "
                            "the host name, or the address as four decimal numbers") from None
        return str(v4), v4
    return host, None
