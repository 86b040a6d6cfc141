"""Where an app may send requests: the entries of its manifest's ``net.allow`` and of the
operator's net rules (the same grammar: a call must match an entry of each).

An entry names a host and, optionally, a scheme and a port:

    "api.github.com"            https://api.github.com on port 443
    "*.googleapis.com"          https on 443, any host under googleapis.com (not the apex)
    "http://example.org"        plain http on port 80 (and only that)
    "api.example.com:8443"      https on port 8443

HTTPS on 443 unless the entry says otherwise: plain HTTP and other ports must each be asked
for. A bare ``*``, or a wildcard over a top-level domain (``*.com``), is refused; an IPv6
address is written in brackets (``[2001:db8::1]:8443``). Hosts are normalised as URLs are
(lower case, IDNA, no trailing dot), so an entry and a URL are compared in the same form.
"""

from __future__ import annotations

from dataclasses import dataclass

from fazt.egress import Target, parse_url
from fazt.errors import NetBadUrl

MAX_ENTRY_CHARS = 260


class BadPattern(ValueError):
    """An allow entry or host pattern that cannot be used; the message says why."""


@dataclass(frozen=True)
class HostPattern:
    """An exact host, or (``wildcard``) every host under ``host``."""

    host: str
    wildcard: bool = False

    def matches(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def covers(self, other: HostPattern) -> bool:
        """Every host ``other`` matches, this matches too."""
        if self.wildcard:
            return other.host.endswith("." + self.host) or (other.wildcard
                                                             and other.host == self.host)
        return not other.wildcard and other.host == self.host

    def __str__(self) -> str:
        return f"*.{self.host}" if self.wildcard else self.host


@dataclass(frozen=True)
class AllowEntry:
    """One ``net.allow`` entry of a manifest."""

    text: str
    scheme: str
    pattern: HostPattern
    port: int

    def matches(self, target: Target) -> bool:
        return target.scheme == self.scheme and target.port == self.port \
            and self.pattern.matches(target.host)

    @property
    def canonical(self) -> str:
        """The entry in its shortest form ("api.github.com", "http://example.org:8080")."""
        return entry_text(self.scheme, str(self.pattern), self.port)


def entry_text(scheme: str, host: str, port: int) -> str:
    """The shortest entry for ``scheme://host:port`` (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        shown += f":{port}"
    return shown if scheme == "https" else f"http://{shown}"


def entry_for(target: Target) -> str:
    """The entry that allows exactly ``target``'s scheme, host and port."""
    return entry_text(target.scheme, target.host, target.port)


def parse_host_pattern(text: object) -> HostPattern:
    """A host or ``*.domain`` (a secret's domain, and the host part of an allow entry)."""
    if not isinstance(text, str) or not text:
        raise BadPattern("must be a host name such as \"api.github.com\" or \"*.example.com\"")
    if len(text) > MAX_ENTRY_CHARS:
        raise BadPattern(f"is over {MAX_ENTRY_CHARS} characters")
    if text == "*":
        raise BadPattern("\"*\" would allow the whole Internet: name the hosts")
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    if "*" in rest:
        raise BadPattern("a wildcard is only allowed as the first label (\"*.example.com\")")
    if any(c in rest for c in "/?#@:[]") and not _is_ipv6(rest):
        raise BadPattern("must be a host name only (no scheme, port, path or credentials)")
    target = _parse(f"https://{f'[{rest}]' if _is_ipv6(rest) else rest}/")
    if wildcard and (target.ip is not None or "." not in target.host):
        raise BadPattern("a wildcard must cover a domain, not a top-level domain or an address "
                         "(\"*.example.com\")")
    return HostPattern(target.host, wildcard)


def parse_allow_entry(text: object) -> AllowEntry:
    """A manifest's ``net.allow`` entry (see the module docstring)."""
    if not isinstance(text, str) or not text:
        raise BadPattern("must be a host such as \"api.github.com\", \"*.example.com\", "
                         "\"http://example.org\" or \"api.example.com:8443\"")
    if len(text) > MAX_ENTRY_CHARS:
        raise BadPattern(f"is over {MAX_ENTRY_CHARS} characters")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        scheme, rest = "https", text
    elif scheme not in ("http", "https"):
        raise BadPattern(f"only http and https can be allowed, not {scheme!r}")
    rest = rest[:-1] if rest.endswith("/") else rest
    if any(c in rest for c in "/?#@"):
        raise BadPattern("an entry is [http://]host[:port], with no path, query or credentials")
    host, port = rest, None
    if rest.startswith("["):                          # [v6]:port
        close = rest.find("]")
        host, tail = rest[1:close], rest[close + 1:]
        if close < 0 or (tail and not tail.startswith(":")) or not _is_ipv6(host):
            raise BadPattern("brackets hold an IPv6 address: \"[2001:db8::1]:8443\"")
        port = tail[1:] if tail else None
    elif rest.count(":") > 1:
        raise BadPattern("an IPv6 address is written in brackets: \"[2001:db8::1]:8443\"")
    elif ":" in rest:
        host, port = rest.split(":", 1)
    pattern = parse_host_pattern(host)
    default = 443 if scheme == "https" else 80
    if port is None:
        number = default
    elif not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise BadPattern(f"the port {port!r} must be a number from 1 to 65535")
    else:
        number = int(port)
    return AllowEntry(text=text, scheme=scheme, pattern=pattern, port=number)


def _parse(url: str) -> Target:
    try:
        return parse_url(url)
    except NetBadUrl as exc:
        raise BadPattern(str(exc).replace("the URL", "the host")) from None


def _is_ipv6(text: str) -> bool:
    return ":" in text and all(c in "0123456789abcdefABCDEF:." for c in text)
