"""The ``net`` capability: outbound HTTP that cannot be turned against the host.

    const r = await net.fetch("https://api.github.com/repos/x/y",
                              {headers: {accept: "application/json"}, secret: "GITHUB_TOKEN"})
    r.status  r.ok  r.headers["content-type"]  r.text()  r.json()  r.bytes()

One call, in order: the arguments are checked; the URL is parsed and normalised (``egress``);
its scheme, host and port must match an entry of the manifest's ``net.allow`` and, once the
operator has set rules for the app, of a rule (``NetPolicy``); a named secret must be listed
in the manifest, set, and bound to this host; the request's call count (``max_calls``) and
the rule's token bucket must have room; a cached answer is used if the rule caches; then the
call waits for one of the request's ``max_concurrent`` slots and goes out through the egress
client - SSRF guard, redirects re-checked hop by hop with the same allowlist and secret
binding - within the budget's net phase and ``timeoutMs``, whichever ends first. Every call,
refused or not, is logged (``NetLog``).
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import trio

from fazt.budget import Phase
from fazt.capabilities._allow import entry_for
from fazt.capabilities._manifest import MAX_NET_TIMEOUT_MS, NetRequest
from fazt.capabilities._net_log import NetCall, NetLog, now_iso_ms
from fazt.capabilities._net_policy import NetPolicy, NetRule, Secret
from fazt.capabilities._registry import Binary, Call, Provider
from fazt.capabilities._store import arity, options, whole_number
from fazt.egress import REFUSED_HEADERS, Egress, FetchResponse, Headers, Target, parse_url
from fazt.errors import (
    CapabilityError,
    FaztError,
    NetDenied,
    NetRateLimited,
    NetTooManyCalls,
)

NAME = "net"
LABEL = "net.fetch"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OPTIONS = ("method", "headers", "body", "json", "timeoutMs", "secret")
MAX_HEADERS = 100
RECENT_CALLS = 1000          # the calls whose outcomes the runtime view counts
MAX_BUCKETS = 10_000         # rate-limit buckets kept (full ones are dropped first)
MAX_HEADER_BYTES = 16 * 1024
SCRUB_MIN_CHARS = 8          # a secret value this long is cut out of responses
_SCRUBBED = b"[secret]"
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, kw_only=True)
class NetLimits:
    max_calls: int = 10             # per request
    max_concurrent: int = 6         # per request
    max_in_flight: int = 100        # the whole server
    max_in_flight_per_app: int = 30     # one app's share of it
    rate_per_s: float = 20.0        # per app and rule (or manifest entry), when no rule says
    burst: int = 40
    cache_bytes: int = 8 * 1024 * 1024


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate_per_s, burst
        self.tokens, self.at = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class _Cached:
    expires: float
    response: FetchResponse

    @property
    def size(self) -> int:
        return len(self.response.body) + sum(len(n) + len(v) for n, v in self.response.headers)


CacheKey = tuple[Any, ...]
"""(app, url, the app's headers): the app first."""


class ResponseCache:
    """GET responses of calls whose rule has a ``cache_ttl_s``, per app, least recently used
    first out, within ``max_bytes``; one app holds at most half of it (an app filling the
    cache cannot push every other app's entries out)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, _Cached] = OrderedDict()
        self._bytes = 0
        self._app_bytes: dict[str, int] = {}
        self.hits: dict[str, int] = {}      # rule entry -> count
        self.misses: dict[str, int] = {}

    def get(self, key: CacheKey, rule: str, now: float) -> FetchResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= now:
            self._drop(key)
            entry = None
        counts = self.misses if entry is None else self.hits
        counts[rule] = counts.get(rule, 0) + 1
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.response

    def put(self, key: CacheKey, response: FetchResponse, ttl_s: float, now: float) -> None:
        entry = _Cached(now + ttl_s, response)
        if entry.size > self.max_bytes // 4:      # one entry never takes most of the room
            return
        app = key[0]
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        self._app_bytes[app] = self._app_bytes.get(app, 0) + entry.size
        while self._app_bytes[app] > self.max_bytes // 2:
            self._drop(next(k for k in self._entries if k[0] == app))
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def forget_app(self, app: str) -> None:
        for key in [k for k in self._entries if k[0] == app]:
            self._drop(key)

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self._bytes,
                "hits": dict(self.hits), "misses": dict(self.misses)}

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
            left = self._app_bytes[key[0]] - entry.size
            if left:
                self._app_bytes[key[0]] = left
            else:
                del self._app_bytes[key[0]]


@dataclass
class _RequestCalls:
    """One request's calls: how many were made, and the slots for concurrent ones."""

    made: int
    slots: trio.Semaphore


@dataclass(frozen=True)
class _Outgoing:
    method: str
    target: Target
    headers: Headers
    body: bytes
    timeout_ms: int | None
    secret: Secret | None


class NetProvider:
    def __init__(self, egress: Egress, policy: NetPolicy, log: NetLog, *,
                 limits: NetLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.egress = egress
        self.policy = policy
        self.log = log
        self.limits = limits or NetLimits()
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.cache = ResponseCache(self.limits.cache_bytes)
        self._in_flight = trio.Semaphore(self.limits.max_in_flight)
        self._per_app: dict[str, trio.Semaphore] = {}
        self.recent: deque[str | None] = deque(maxlen=RECENT_CALLS)   # error codes (None: ok)

    def provider(self) -> Provider:
        return Provider(name=NAME, methods={"fetch": self._fetch})

    @property
    def in_flight(self) -> int:
        return self.limits.max_in_flight - self._in_flight.value

    def stats(self) -> dict[str, Any]:
        """For /api/_debug/runtime."""
        resolver = self.egress.backend.resolver
        return {"in_flight": self.in_flight,
                "dns_lookups_in_flight": getattr(resolver, "lookups_in_flight", 0),
                "recent_calls": len(self.recent),
                "recent_errors": dict(Counter(code for code in self.recent if code)),
                "cache": self.cache.stats()}

    def forget_app(self, app: str) -> None:
        self.cache.forget_app(app)
        self._per_app.pop(app, None)
        for key in [k for k in self._buckets if k[0] == app]:
            del self._buckets[key]

    # -- the call ----------------------------------------------------------------------------

    async def _fetch(self, call: Call, args: list[Any]) -> Binary:
        started = trio.current_time()
        method, target, out = "GET", None, None
        try:
            url, *rest = arity(LABEL, args, 1, 3)
            given = options(LABEL, rest[0] if rest else None, OPTIONS)
            method = _method(given.get("method", "GET"))
            target = parse_url(url)
            out = self._outgoing(call, method, target, given,
                                 rest[1] if len(rest) > 1 else None)  # body, apart (runtime.js)
            response, cached = await self._send(call, out)
        except FaztError as exc:
            self._record(call, method, target, out, started, None, exc.code)
            if out is not None and out.secret is not None:
                exc.args = (_scrub_text(str(exc), out.secret),)
            raise
        self._record(call, method, response.target, out, started, response, None,
                     cached=cached)
        body, headers = response.body, response.headers
        if out.secret is not None:
            body, headers = _scrub(body, headers, out.secret)
        joined: dict[str, str] = {}
        for name, value in headers:
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        url = response.url if out.secret is None else _scrub_url(response.url, out.secret)
        return Binary({"status": response.status, "ok": 200 <= response.status <= 299,
                       "headers": joined, "url": url,
                       "redirected": response.redirects > 0, "cached": cached}, body)

    def _outgoing(self, call: Call, method: str, target: Target, given: dict[str, Any],
                  hoisted: Any) -> _Outgoing:
        """The checked request (raises before anything is sent)."""
        headers = _headers(given.get("headers"))
        body = _body(given, hoisted, headers)
        if body and method in ("GET", "HEAD"):
            raise CapabilityError(f"{LABEL}: a {method} request cannot have a body")
        timeout = given.get("timeoutMs")
        timeout_ms = None if timeout is None else \
            whole_number(LABEL, "timeoutMs", timeout, 1, MAX_NET_TIMEOUT_MS)
        request = _net_request(call)
        self._check_allowed(call, request, target)
        secret = self._secret(call, request, given.get("secret"), target)
        return _Outgoing(method=method, target=target, headers=headers, body=body,
                         timeout_ms=timeout_ms, secret=secret)

    async def _send(self, call: Call, out: _Outgoing) -> tuple[FetchResponse, bool]:
        state = call.local.get(NAME)
        if state is None:
            state = call.local[NAME] = _RequestCalls(0, trio.Semaphore(self.limits.max_concurrent))
        if state.made >= self.limits.max_calls:
            raise NetTooManyCalls(f"{LABEL}: a request may make at most {self.limits.max_calls} "
                                  "calls")
        state.made += 1
        rule = self.policy.rule_for(call.app, out.target)
        # The app's headers are part of the key: an answer to one set of headers (an API key
        # of one user, a Range, an Accept) is never another's. A shared cache must not answer
        # with another's credentials' answer (RFC 9111 section 3.5): requests with a secret,
        # authorization or cookies are not cached at all.
        key = (call.app, str(out.target.url), tuple(sorted(out.headers)))
        cacheable = rule is not None and bool(rule.cache_ttl_s) and out.method == "GET" \
            and out.secret is None and self.cache.max_bytes > 0 \
            and not any(n in ("authorization", "cookie") for n, _ in out.headers)
        if cacheable and rule is not None:
            hit = self.cache.get(key, rule.entry.canonical, self._clock())
            if hit is not None:
                return hit, True
        request = _net_request(call)
        self._take_token(call.app, request, out.target, rule)   # what goes out, not cache hits
        first = out.target

        def prepare(hop: Target) -> tuple[httpx.URL, Headers]:
            if hop is not first:
                self._check_allowed(call, request, hop, redirect=True)
                secret = out.secret
                if secret is not None and not _bound(secret, hop, first) and \
                        _carries(hop.url, secret):
                    # the upstream's Location carries the secret (a query string kept on a
                    # redirect) to a hop it is not bound to: not sent
                    raise NetDenied(f"{LABEL}: a redirect to {hop.origin} would carry the "
                                    f"secret {secret.name!r} where it is not bound")
                # each hop goes out: its own rule's bucket (a redirect is no way around one)
                self._take_token(call.app, request, hop, self.policy.rule_for(call.app, hop))
            return _inject(out.secret, hop, first)

        with call.budget.fail_after(Phase.NET) as scope:
            deadline = scope.deadline
            timeouts = [request.timeout_ms, out.timeout_ms]
            for ms in (t for t in timeouts if t is not None):
                deadline = min(deadline, trio.current_time() + ms / 1000)
            async with state.slots, self._app_slots(call.app), self._in_flight:
                response = await self.egress.fetch(out.method, out.target, headers=out.headers,
                                                   body=out.body, deadline=deadline,
                                                   prepare=prepare)
        if cacheable and rule is not None and rule.cache_ttl_s and response.status == 200 \
                and not response.redirects and _storable(response.headers):
            self.cache.put(key, response, rule.cache_ttl_s, self._clock())
        return response, False

    # -- policy ------------------------------------------------------------------------------

    def _check_allowed(self, call: Call, request: NetRequest, target: Target, *,
                       redirect: bool = False) -> None:
        what = ("a redirect to " if redirect else "") + target.origin
        entry = entry_for(target)
        if request.allow is not None and not any(e.matches(target) for e in request.allow):
            raise NetDenied(f"{LABEL}: {what} is not allowed: add \"{entry}\" to "
                            "\"capabilities\".\"net\".\"allow\" in manifest.json")
        if (request.allow is None or self.policy.restricts(call.app)) and \
                self.policy.rule_for(call.app, target) is None:
            raise NetDenied(f"{LABEL}: {what} is not allowed by the server's net rules "
                            f"(fazt net allow {entry} --app {call.app})")

    def _secret(self, call: Call, request: NetRequest, name: Any,
                target: Target) -> Secret | None:
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise CapabilityError(f"{LABEL}: secret must be the name of a secret")
        if not request.every_secret and name not in request.secrets:
            raise NetDenied(f"{LABEL}: the app's manifest does not list the secret {name!r}: "
                            f"add it to \"capabilities\".\"net\".\"secrets\"")
        secret = self.policy.secret(call.app, name)
        if secret is not None and secret.app is None and secret.domain is None:
            # stored before a secret for every app needed a binding: not usable unbound
            raise NetDenied(f"{LABEL}: the secret {name!r} is for every app but bound to no "
                            f"domain: store it again with --domain")
        if secret is None:
            raise NetDenied(f"{LABEL}: no secret {name!r} is set (fazt secret set {name} "
                            f"--app {call.app} --as bearer)")
        if secret.domain is not None and not secret.domain.matches(target):
            raise NetDenied(f"{LABEL}: the secret {name!r} is only sent to "
                            f"{secret.domain.canonical}, not {entry_for(target)}")
        return secret

    def _take_token(self, app: str, request: NetRequest, target: Target,
                    rule: NetRule | None) -> None:
        """One token of the bucket that limits calls to ``target``: its rule's, else the
        manifest entry's it matches (a wildcard's hosts share one: rotating subdomains is no
        way around it)."""
        rate = self.limits.rate_per_s if rule is None or rule.rate_per_s is None \
            else rule.rate_per_s
        if rate <= 0:
            return
        burst = self.limits.burst if rule is None or rule.burst is None else rule.burst
        if rule is not None:
            scope = rule.entry.canonical
        else:
            entry = next((e for e in request.allow or () if e.matches(target)), None)
            scope = entry.canonical if entry is not None else entry_for(target)
        now = self._clock()
        bucket = self._buckets.pop((app, scope), None)     # re-inserted: the newest last
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = TokenBucket(rate, burst, now)
        if len(self._buckets) >= MAX_BUCKETS:
            self._prune_buckets(now)
        self._buckets[(app, scope)] = bucket
        if not bucket.take(now):
            raise NetRateLimited(f"{LABEL}: calls to {scope} are limited to {rate:g} per "
                                 f"second (burst {burst}); try again shortly")

    def _prune_buckets(self, now: float) -> None:
        """Drop full buckets (they hold no state: a new one starts full), then the least
        recently used, down to MAX_BUCKETS / 2."""
        for key, bucket in list(self._buckets.items()):
            if min(bucket.burst, bucket.tokens + (now - bucket.at) * bucket.rate) >= bucket.burst:
                del self._buckets[key]
        while len(self._buckets) > MAX_BUCKETS // 2:
            del self._buckets[next(iter(self._buckets))]

    def _app_slots(self, app: str) -> trio.Semaphore:
        """The app's share of the server's outbound calls at once."""
        slots = self._per_app.get(app)
        if slots is None:
            slots = self._per_app[app] = trio.Semaphore(self.limits.max_in_flight_per_app)
        return slots

    def _record(self, call: Call, method: str, target: Target | None, out: _Outgoing | None,
                started: float, response: FetchResponse | None, error: str | None, *,
                cached: bool = False) -> None:
        """Log one call: never its query string, headers or body (nor a secret a redirect put
        in the path it ended at)."""
        self.recent.append(error)
        host = "" if target is None else entry_for(target)      # scheme and port as an entry
        path = "" if target is None else target.path
        if out is not None and out.secret is not None:
            host, path = _scrub_text(host, out.secret), _scrub_text(path, out.secret)
        self.log.record(NetCall(
            ts=now_iso_ms(), app=call.app, request_id=call.request_id, method=method,
            host=host, path=path,
            status=None if response is None else response.status,
            bytes_out=0 if out is None else len(out.body),
            bytes_in=0 if response is None else len(response.body),
            duration_ms=round((trio.current_time() - started) * 1000, 2), error=error,
            cached=cached))


# -- arguments ------------------------------------------------------------------------------


def _net_request(call: Call) -> NetRequest:
    request = call.requested
    if not isinstance(request, NetRequest):     # granted by a test seam without a manifest
        return NetRequest(allow=None)
    return request


def _method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise CapabilityError(f"{LABEL}: method must be one of {', '.join(sorted(METHODS))}")
    return value.upper()


def _headers(value: Any) -> Headers:
    if value is None:
        return []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and all(isinstance(i, list) and len(i) == 2 for i in value):
        items = [(i[0], i[1]) for i in value]
    else:
        raise CapabilityError(f"{LABEL}: headers must be an object of name: value (or a list "
                              "of [name, value] pairs)")
    if len(items) > MAX_HEADERS:
        raise CapabilityError(f"{LABEL}: at most {MAX_HEADERS} headers")
    out: Headers = []
    size = 0
    for name, raw in items:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
            raw = str(int(raw)) if float(raw).is_integer() else str(raw)
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
            raise CapabilityError(f"{LABEL}: {str(name)[:64]!r} is not a valid header name")
        if isinstance(raw, str):
            raw = raw.strip(" \t")      # as fetch does: no leading or trailing whitespace
        if not isinstance(raw, str) or not all(c == "\t" or " " <= c <= "~" for c in raw):
            raise CapabilityError(f"{LABEL}: the value of header {name!r} must be a string of "
                                  "visible ASCII text (no line breaks, control or non-ASCII "
                                  "characters: encode them, e.g. with encodeURIComponent)")
        if name.lower() in REFUSED_HEADERS:
            raise CapabilityError(f"{LABEL}: the header {name!r} is set by fazt, not the app")
        size += len(name) + len(raw)
        out.append((name.lower(), raw))
    if size > MAX_HEADER_BYTES:
        raise CapabilityError(f"{LABEL}: the headers are over {MAX_HEADER_BYTES} bytes")
    return out


def _body(given: dict[str, Any], hoisted: Any, headers: Headers) -> bytes:
    if "json" in given and ("body" in given or hoisted is not None):
        raise CapabilityError(f"{LABEL}: give body or json, not both")
    has_type = any(n == "content-type" for n, _ in headers)
    if "json" in given:
        try:
            data = orjson.dumps(given["json"])
        except orjson.JSONEncodeError as exc:
            raise CapabilityError(f"{LABEL}: json cannot be sent: {exc}") from None
        if not has_type:
            headers.append(("content-type", "application/json"))
        return data
    body = hoisted if hoisted is not None else given.get("body")
    if body is None:
        return b""
    if isinstance(body, str):
        if body and not has_type:
            headers.append(("content-type", "text/plain;charset=UTF-8"))
        return body.encode("utf-8", "replace")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise CapabilityError(f"{LABEL}: body must be a string or bytes (a Uint8Array or "
                          "ArrayBuffer); to send an object, use json")


# -- secrets --------------------------------------------------------------------------------


def _inject(secret: Secret | None, hop: Target, first: Target) -> tuple[httpx.URL, Headers]:
    """The URL and headers of one hop: the secret is added where it is bound (its domain, or
    the origin the call named), and nowhere else; never over plain http after https."""
    if secret is None or not _bound(secret, hop, first):
        return hop.url, []
    if secret.inject == "bearer":
        return hop.url, [("authorization", f"Bearer {secret.value}")]
    assert secret.param is not None
    if secret.inject == "header":
        return hop.url, [(secret.param.lower(), secret.value)]
    return hop.url.copy_set_param(secret.param, secret.value), []


def _bound(secret: Secret, hop: Target, first: Target) -> bool:
    """Whether ``secret`` may go to ``hop``: what its domain entry matches (scheme, host and
    port), or (no domain) the origin the call named; never over plain http after https."""
    bound = secret.domain.matches(hop) if secret.domain is not None \
        else hop.origin == first.origin
    return bound and not (hop.scheme == "http" and first.scheme == "https")


def _scrub(body: bytes, headers: Headers, secret: Secret) -> tuple[bytes, Headers]:
    """An upstream that echoes what it was sent (a debugging endpoint, an error page) must
    not hand the secret to the app: its value is cut out of the answer."""
    if len(secret.value) < SCRUB_MIN_CHARS:
        return body, headers
    for form in _forms(secret):
        body = body.replace(form.encode("utf-8"), _SCRUBBED)
    return body, [(n, _scrub_text(v, secret)) for n, v in headers]


def _scrub_text(text: str, secret: Secret) -> str:
    if len(secret.value) < SCRUB_MIN_CHARS:
        return text
    for form in _forms(secret):
        text = text.replace(form, _SCRUBBED.decode())
    return text


def _carries(url: httpx.URL, secret: Secret) -> bool:
    """Whether ``url`` holds the secret's value: as a query parameter's value (however it is
    percent-encoded, whatever its length), or anywhere once decoded (8 characters or more)."""
    if any(value == secret.value for _, value in url.params.multi_items()):
        return True
    return len(secret.value) >= SCRUB_MIN_CHARS and \
        secret.value in urllib.parse.unquote_plus(str(url))


def _scrub_url(text: str, secret: Secret) -> str:
    """A URL for the app: a query parameter whose value is the secret shows ``[secret]``."""
    url = httpx.URL(text)
    params = url.params.multi_items()
    if any(value == secret.value for _, value in params):
        url = url.copy_with(params=[(k, _SCRUBBED.decode() if v == secret.value else v)
                                    for k, v in params])
    shown = str(url).replace("%5Bsecret%5D", _SCRUBBED.decode())    # as the other scrubs show it
    return _scrub_text(shown, secret)


def _forms(secret: Secret) -> set[str]:
    """The value as sent: as is, and URL-encoded (a query parameter echoed back)."""
    return {secret.value, urllib.parse.quote(secret.value, safe=""),
            urllib.parse.quote_plus(secret.value)}


def _storable(headers: Headers) -> bool:
    """Not ``no-store`` nor ``private``, not setting a cookie, and not varying with the
    request's headers (a Vary other than Accept-Encoding, which fazt sets itself)."""
    for name, value in headers:
        if name == "set-cookie":
            return False
        lowered = value.lower()
        if name == "cache-control" and ("no-store" in lowered or "private" in lowered):
            return False
        if name == "vary" and any(v.strip() not in ("accept-encoding", "")
                                  for v in lowered.split(",")):
            return False
    return True


__all__ = ["NetLimits", "NetProvider", "ResponseCache", "TokenBucket"]
