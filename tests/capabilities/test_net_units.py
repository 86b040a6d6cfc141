"""Unit tests of the net capability's parts: allow entries and host patterns, the manifest's
``net`` section, the token bucket and the response cache, NetPolicy and NetLog against a real
encrypted database, and ``NetProvider``'s fetch against a real HTTP server on 127.0.0.1 (and
the same server over HTTPS, with a trustme CA, where a test needs it; without the JS sandbox).

Names resolve through a StaticResolver; the guard's test seam permits exactly the local test
names at 127.0.0.1, so nothing leaves the machine. Time is a fake clock where the code takes
one (the rate limiter, the cache), trio's autojump clock for a follower's timeout, and the
trio clock (bounded) for the fetch timeouts.
"""

from __future__ import annotations

import json
import math
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing
import trustme
from hypercorn.config import Config
from hypercorn.trio import serve

from fazt.budget import Budget, BudgetPolicy
from fazt.capabilities import GO_COMPAT, Binary, Call, NetRequest, parse_capabilities
from fazt.capabilities import net as net_module
from fazt.capabilities._allow import (
    MAX_ENTRY_CHARS,
    BadPattern,
    HostPattern,
    entry_for,
    parse_allow_entry,
    parse_host_pattern,
)
from fazt.capabilities._manifest import MAX_ALLOW, MAX_NET_TIMEOUT_MS, MAX_SECRETS
from fazt.capabilities._net_log import PRUNE_EVERY, NetCall, NetLog, now_iso_ms
from fazt.capabilities._net_policy import MAX_SECRET_BYTES, NetPolicy
from fazt.capabilities.net import NetLimits, NetProvider, ResponseCache, TokenBucket
from fazt.egress import Egress, FetchResponse, StaticResolver, parse_url
from fazt.errors import (
    AppNotFound,
    BadRequest,
    CapabilityError,
    InvalidManifest,
    NetBadUrl,
    NetDenied,
    NetError,
    NetRateLimited,
    NetTimeout,
    NetTooManyCalls,
    NotFound,
    PayloadTooLarge,
)
from fazt.storage import Database
from tests.capabilities.conftest import APP, OTHER

# A request cut short (a timeout) is closed while httpx's and httpcore's stream generators are
# mid-iteration; trio finalizes them at garbage collection and warns. Only those are ignored
# (as in tests/egress/test_client.py).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object (AsyncHTTP11Connection"
    "._receive_response_body|AsyncResponseStream.__aiter__|BoundAsyncStream.__aiter__"
    "|HTTP11ConnectionByteStream.__aiter__|PoolByteStream.__aiter__)"
    ":pytest.PytestUnraisableExceptionWarning")

LOCAL_NAMES = ("good.test", "other.test", "a.wild.test", "b.wild.test")
SECRET = "s3cr3t/Value+0123 456789"      # URL-encoded differently by quote and quote_plus


def _re(text: str) -> str:
    return re.escape(text)


def _leaks(text: str) -> bool:
    """Whether ``text`` holds the secret, as is or URL-encoded."""
    return any(form in text for form in (SECRET, urllib.parse.quote(SECRET, safe=""),
                                         urllib.parse.quote_plus(SECRET)))


# == allow entries and host patterns ========================================================


@pytest.mark.parametrize(("text", "scheme", "host", "port", "wildcard"), [
    ("api.github.com", "https", "api.github.com", 443, False),
    ("https://api.github.com", "https", "api.github.com", 443, False),
    ("https://api.github.com/", "https", "api.github.com", 443, False),
    ("http://example.org", "http", "example.org", 80, False),
    ("http://example.org:8080", "http", "example.org", 8080, False),
    ("api.example.com:8443", "https", "api.example.com", 8443, False),
    ("*.googleapis.com", "https", "googleapis.com", 443, True),
    ("*.Example.COM:8443", "https", "example.com", 8443, True),
    ("API.Example.COM", "https", "api.example.com", 443, False),
    ("api.example.com.", "https", "api.example.com", 443, False),
    ("Bücher.example", "https", "xn--bcher-kva.example", 443, False),
    ("*.bücher.example", "https", "xn--bcher-kva.example", 443, True),
    ("93.184.216.34", "https", "93.184.216.34", 443, False),
    ("http://93.184.216.34:8080", "http", "93.184.216.34", 8080, False),
    ("[2001:db8::1]", "https", "2001:db8::1", 443, False),
    ("[2001:DB8:0::1]:8443", "https", "2001:db8::1", 8443, False),
    ("http://[::1]:1", "http", "::1", 1, False),
    ("a.b:65535", "https", "a.b", 65535, False),
    ("HTTPS://Api.Example.com", "https", "api.example.com", 443, False),   # scheme lowered
    ("Http://example.org:8080/", "http", "example.org", 8080, False),
])
def test_accepted_allow_entries_are_normalised(text: str, scheme: str, host: str, port: int,
                                               wildcard: bool) -> None:
    entry = parse_allow_entry(text)
    assert (entry.scheme, entry.pattern.host, entry.port, entry.pattern.wildcard) == \
        (scheme, host, port, wildcard)
    assert entry.text == text       # what the manifest said, for messages and to_json


@pytest.mark.parametrize(("text", "reason"), [
    ("*", "whole Internet"),
    ("https://*", "whole Internet"),
    ("*.com", "top-level domain"),
    ("*.com.", "top-level domain"),
    ("*.93.184.216.34", "not a top-level domain or an address"),
    ("*example.com", "only allowed as the first label"),
    ("a.*.com", "only allowed as the first label"),
    ("*.*.example.com", "only allowed as the first label"),
    ("api.*", "only allowed as the first label"),
    ("ftp://example.com", "only http and https"),
    ("ws://example.com", "only http and https"),
    ("example.com/path", "no path, query or credentials"),
    ("https://example.com/v1/", "no path, query or credentials"),
    ("example.com?x=1", "no path, query or credentials"),
    ("example.com#top", "no path, query or credentials"),
    ("user@example.com", "no path, query or credentials"),
    ("https://user@example.com:443", "no path, query or credentials"),
    ("[::1]/x", "no path, query or credentials"),
    ("example.com//", "no path, query or credentials"),
    ("example.com:0", "port '0'"),
    ("example.com:65536", "port '65536'"),
    ("example.com:abc", "port 'abc'"),
    ("example.com:", "port ''"),
    ("example.com:٤٤٣", "must be a number"),          # Arabic-Indic digits
    ("127.1", "non-standard form"),
    ("2130706433", "non-standard form"),
    ("0x7f.0.0.1", "non-standard form"),
    ("0177.0.0.1", "IPv4"),             # refused by httpx's parser already
    ("[::1", "brackets hold an IPv6 address"),
    ("[::1]8443", "brackets hold an IPv6 address"),
    ("[::1]x", "brackets hold an IPv6 address"),
    ("[a.example]", "brackets hold an IPv6 address"),
    ("[93.184.216.34]:443", "brackets hold an IPv6 address"),
    ("[]", "brackets hold an IPv6 address"),
    ("2001:db8::1", "written in brackets"),
    ("::1", "written in brackets"),
    ("http://2001:db8::1:8080", "written in brackets"),
    ("[::1]:", "port ''"),
    ("[::1]:99999", "port '99999'"),
    ("exa mple.com", "spaces or control characters"),
    ("-bad.example.com", "not a valid host name"),
    ("a..example.com", "not a valid host name"),
    ("", "must be a host"),
    ("x" * (MAX_ENTRY_CHARS - 3) + ".com", f"over {MAX_ENTRY_CHARS} characters"),
    ("a" * 250 + ".com", "not a valid host name"),      # under the entry limit, over 63/label
])
def test_refused_allow_entries_say_why(text: str, reason: str) -> None:
    with pytest.raises(BadPattern, match=_re(reason)):
        parse_allow_entry(text)


@pytest.mark.parametrize("value", [None, 5, ["a.com"], {"host": "a.com"}, b"a.com"])
def test_an_allow_entry_must_be_a_string(value: object) -> None:
    with pytest.raises(BadPattern, match="must be a host"):
        parse_allow_entry(value)
    with pytest.raises(BadPattern, match="must be a host name"):
        parse_host_pattern(value)


def test_an_ipv6_address_without_brackets_is_refused_not_read_as_host_and_port() -> None:
    with pytest.raises(BadPattern, match="brackets"):
        parse_allow_entry("2001:db8::1:1")       # itself a valid address, not [2001:db8::1]:1


@pytest.mark.parametrize(("text", "canonical"), [
    ("up.test", "up.test"),
    ("https://UP.test:443/", "up.test"),
    ("up.test:8443", "up.test:8443"),
    ("https://up.test:80", "up.test:80"),
    ("http://up.test", "http://up.test"),
    ("HTTP://up.test:80", "http://up.test"),
    ("http://up.test:8080", "http://up.test:8080"),
    ("http://up.test:443", "http://up.test:443"),
    ("*.X.test", "*.x.test"),
    ("http://*.x.test:81", "http://*.x.test:81"),
    ("[2001:DB8:0::1]", "[2001:db8::1]"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_an_entrys_canonical_form_is_the_shortest_and_parses_back(text: str,
                                                                  canonical: str) -> None:
    entry = parse_allow_entry(text)
    assert entry.canonical == canonical
    again = parse_allow_entry(canonical)
    assert (again.scheme, again.pattern, again.port) == (entry.scheme, entry.pattern, entry.port)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://a.example/x?y=1", "a.example"),
    ("https://a.example:8443/", "a.example:8443"),
    ("http://a.example/", "http://a.example"),
    ("http://a.example:8080/", "http://a.example:8080"),
    ("https://Bücher.example/", "xn--bcher-kva.example"),
    ("https://[2001:db8::1]/", "[2001:db8::1]"),
    ("http://[2001:db8::1:1]:8080/", "http://[2001:db8::1:1]:8080"),
])
def test_entry_for_a_target_is_an_entry_allowing_exactly_it(url: str, expected: str) -> None:
    target = parse_url(url)
    assert entry_for(target) == expected
    entry = parse_allow_entry(expected)
    assert entry.matches(target) and entry.canonical == expected


@pytest.mark.parametrize(("text", "host", "wildcard"), [
    ("api.github.com", "api.github.com", False),
    ("*.Example.com.", "example.com", True),
    ("Bücher.example", "xn--bcher-kva.example", False),
    ("10.0.0.1", "10.0.0.1", False),
    ("2001:DB8::1", "2001:db8::1", False),      # a rule's host: IPv6 without brackets
])
def test_host_patterns_are_normalised(text: str, host: str, wildcard: bool) -> None:
    assert parse_host_pattern(text) == HostPattern(host, wildcard)
    assert str(parse_host_pattern(text)) == ("*." if wildcard else "") + host


@pytest.mark.parametrize(("text", "reason"), [
    ("*", "whole Internet"),
    ("*.com", "top-level domain"),
    ("a.*.com", "first label"),
    ("example.com:443", "host name only"),
    ("https://example.com", "host name only"),
    ("example.com/x", "host name only"),
    ("u@example.com", "host name only"),
    ("[::1]", "host name only"),
    ("127.1", "non-standard form"),
    ("", "must be a host name"),
    ("a" * (MAX_ENTRY_CHARS + 1), f"over {MAX_ENTRY_CHARS}"),
])
def test_refused_host_patterns_say_why(text: str, reason: str) -> None:
    with pytest.raises(BadPattern, match=_re(reason)):
        parse_host_pattern(text)


@pytest.mark.parametrize(("entry", "url", "expected"), [
    ("api.example.com", "https://api.example.com/x?y=1", True),
    ("api.example.com", "https://API.Example.com.:443/x", True),
    ("api.example.com", "http://api.example.com/x", False),            # scheme
    ("api.example.com", "https://api.example.com:8443/x", False),      # port
    ("api.example.com", "https://www.api.example.com/", False),        # exact: no subdomain
    ("api.example.com:8443", "https://api.example.com:8443/", True),
    ("api.example.com:8443", "https://api.example.com/", False),
    ("http://example.org", "http://example.org/", True),
    ("http://example.org", "https://example.org/", False),
    ("http://example.org", "http://example.org:8080/", False),
    ("*.example.com", "https://a.example.com/", True),
    ("*.example.com", "https://a.b.example.com/", True),
    ("*.example.com", "https://example.com/", False),                 # not the apex
    ("*.example.com", "https://evilexample.com/", False),
    ("*.example.com", "https://example.com.evil.net/", False),
    ("*.example.com", "https://a.example.com.evil.net/", False),
    ("*.example.com", "http://a.example.com/", False),
    ("Bücher.example", "https://BÜCHER.example/", True),
    ("Bücher.example", "https://xn--bcher-kva.example/", True),
    ("93.184.216.34", "https://93.184.216.34/", True),
    ("93.184.216.34", "https://93.184.216.35/", False),
    ("[2001:db8::1]:8443", "https://[2001:db8:0:0::1]:8443/", True),
    ("[2001:db8::1]:8443", "https://[2001:db8::2]:8443/", False),
])
def test_allow_entry_matches_parsed_urls(entry: str, url: str, expected: bool) -> None:
    assert parse_allow_entry(entry).matches(parse_url(url)) is expected


@pytest.mark.parametrize(("pattern", "other", "expected"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "*.a.example.com", True),
    ("*.example.com", "*.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "evilexample.com", False),
    ("*.example.com", "*.other.com", False),
    ("*.a.example.com", "*.example.com", False),
    ("a.example.com", "a.example.com", True),
    ("a.example.com", "*.a.example.com", False),
    ("a.example.com", "b.example.com", False),
])
def test_host_pattern_covers(pattern: str, other: str, expected: bool) -> None:
    assert parse_host_pattern(pattern).covers(parse_host_pattern(other)) is expected


# == the manifest's net section =============================================================


def test_a_full_net_section_parses_and_round_trips() -> None:
    section = {"allow": ["api.github.com", "*.googleapis.com", "http://example.org",
                         "api.example.com:8443"],
               "secrets": ["GITHUB_TOKEN", "_X1"], "timeoutMs": 5000}
    requested = parse_capabilities({"net": section, "kv": {}})
    net = requested.get("net")
    assert isinstance(net, NetRequest)
    assert [(e.scheme, str(e.pattern), e.port) for e in net.allow or ()] == [
        ("https", "api.github.com", 443), ("https", "*.googleapis.com", 443),
        ("http", "example.org", 80), ("https", "api.example.com", 8443)]
    assert (net.secrets, net.timeout_ms, net.every_secret) == (("GITHUB_TOKEN", "_X1"), 5000,
                                                               False)
    assert requested.to_json()["net"] == section
    assert parse_capabilities(requested.to_json()) == requested


def test_the_defaults_and_the_go_compat_grant() -> None:
    net = parse_capabilities({"net": {"allow": ["a.example"]}}).get("net")
    assert net == NetRequest(allow=(parse_allow_entry("a.example"),), secrets=(),
                             timeout_ms=None)
    assert isinstance(net, NetRequest) and net.to_json() == {"allow": ["a.example"],
                                                             "secrets": []}
    compat = GO_COMPAT.get("net")
    assert isinstance(compat, NetRequest)
    assert compat.to_json() == {"allow": "operator", "secrets": "*"}


@pytest.mark.parametrize(("section", "message"), [
    ([], '"capabilities.net" must be an object'),
    ("api.github.com", '"capabilities.net" must be an object'),
    ({}, '"capabilities.net.allow" must be a non-empty list'),
    ({"allow": []}, '"capabilities.net.allow" must be a non-empty list'),
    ({"allow": "a.example"}, '"capabilities.net.allow" must be a non-empty list'),
    ({"allow": None}, '"capabilities.net.allow" must be a non-empty list'),
    ({"allow": [f"h{i}.example" for i in range(MAX_ALLOW + 1)]},
     f'"capabilities.net.allow" lists more than {MAX_ALLOW}'),
    ({"allow": ["a.example", "*"]}, '"capabilities.net.allow[1]" "*" would allow'),
    ({"allow": ["*.com"]}, '"capabilities.net.allow[0]" a wildcard must cover a domain'),
    ({"allow": ["a.example", 5]}, '"capabilities.net.allow[1]" must be a host'),
    ({"allow": ["a.example", "ftp://b.example"]}, '"capabilities.net.allow[1]" only http'),
    ({"allow": ["a.example"], "secrets": ["lower"]}, '"capabilities.net.secrets[0]"'),
    ({"allow": ["a.example"], "secrets": ["OK", "1BAD"]}, '"capabilities.net.secrets[1]"'),
    ({"allow": ["a.example"], "secrets": ["OK", 5]}, '"capabilities.net.secrets[1]"'),
    ({"allow": ["a.example"], "secrets": ["A" * 65]}, '"capabilities.net.secrets[0]"'),
    ({"allow": ["a.example"], "secrets": "TOKEN"}, '"capabilities.net.secrets" must be a list'),
    ({"allow": ["a.example"], "secrets": [f"S{i}" for i in range(MAX_SECRETS + 1)]},
     f'"capabilities.net.secrets" must be a list of at most {MAX_SECRETS}'),
    ({"allow": ["a.example"], "secrets": ["TOKEN", "TOKEN"]},
     '"capabilities.net.secrets" lists a name twice'),
    ({"allow": ["a.example"], "timeoutMs": 0}, '"capabilities.net.timeoutMs" must be'),
    ({"allow": ["a.example"], "timeoutMs": MAX_NET_TIMEOUT_MS + 1},
     '"capabilities.net.timeoutMs" must be'),
    ({"allow": ["a.example"], "timeoutMs": True}, '"capabilities.net.timeoutMs" must be'),
    ({"allow": ["a.example"], "timeoutMs": 1.5}, '"capabilities.net.timeoutMs" must be'),
    ({"allow": ["a.example"], "timeoutMs": "100"}, '"capabilities.net.timeoutMs" must be'),
    ({"allow": ["a.example"], "timeout": 100}, 'unknown key "capabilities.net.timeout"'),
    ({"allow": ["a.example"], "Allow": []}, 'unknown key "capabilities.net.Allow"'),
])
def test_net_section_errors_name_the_key(section: Any, message: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_capabilities({"net": section})
    assert message in str(caught.value)


def test_net_section_limits_are_inclusive() -> None:
    net = parse_capabilities({"net": {
        "allow": [f"h{i}.example" for i in range(MAX_ALLOW)],
        "secrets": [f"S{i}" for i in range(MAX_SECRETS)],
        "timeoutMs": MAX_NET_TIMEOUT_MS}}).get("net")
    assert isinstance(net, NetRequest) and net.allow is not None
    assert (len(net.allow), len(net.secrets), net.timeout_ms) == \
        (MAX_ALLOW, MAX_SECRETS, MAX_NET_TIMEOUT_MS)
    assert parse_capabilities({"net": {"allow": ["a.example"], "timeoutMs": 1}}) \
        .to_json()["net"]["timeoutMs"] == 1


@pytest.mark.parametrize("allow", [
    ["a.example", "a.example"],
    ["a.example", "b.example", "https://A.example:443/"],       # the same canonical form
    ["http://a.example", "b.example", "HTTP://a.example:80"],
    ["*.a.example", "b.example", "*.A.example."],
])
def test_an_allow_list_naming_an_entry_twice_is_refused(allow: list[str]) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_capabilities({"net": {"allow": allow}})
    assert f'"capabilities.net.allow[{len(allow) - 1}]" repeats an earlier entry' \
        in str(caught.value)


def test_entries_differing_in_scheme_port_or_wildcard_are_not_duplicates() -> None:
    allow = ["a.example", "http://a.example", "a.example:8443", "http://a.example:443",
             "*.a.example"]
    net = parse_capabilities({"net": {"allow": allow}}).get("net")
    assert isinstance(net, NetRequest) and net.allow is not None
    assert [e.canonical for e in net.allow] == allow


# == token bucket and response cache ========================================================


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.25) is False         # half a token
    assert bucket.take(100.5) is True           # a whole one (0.5 s at 2/s)
    assert bucket.take(100.5) is False
    # a long pause refills to the burst, not beyond it
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_with_a_burst_of_one_spaces_calls_out() -> None:
    bucket = TokenBucket(rate_per_s=10.0, burst=1, now=0.0)
    assert bucket.take(0.0) is True
    assert bucket.take(0.05) is False
    assert bucket.take(0.1) is True


def _response(body: bytes, *, headers: list[tuple[str, str]] | None = None) -> FetchResponse:
    return FetchResponse(status=200, headers=headers or [], body=body, url="https://x.example/",
                         redirects=0, target=parse_url("https://x.example/"))


def test_response_cache_hits_misses_and_expiry_per_rule() -> None:
    cache = ResponseCache(max_bytes=10_000)
    key = (APP, "https://a.example/x")
    assert cache.get(key, "a.example", now=0.0) is None
    response = _response(b"body", headers=[("etag", "1")])
    cache.put(key, response, ttl_s=10, now=0.0)
    assert cache.get(key, "a.example", now=9.99) is response
    assert cache.get((OTHER, "https://a.example/x"), "a.example", now=1.0) is None  # per app
    assert cache.get(key, "a.example", now=10.0) is None                            # expired
    assert cache.stats() == {"entries": 0, "bytes": 0, "hits": {"a.example": 1},
                             "misses": {"a.example": 3}}
    cache.put(key, response, ttl_s=10, now=20.0)
    cache.get(key, "*.other.example", now=21.0)
    assert cache.stats()["hits"] == {"a.example": 1, "*.other.example": 1}
    assert cache.stats()["bytes"] == len(b"body") + len("etag") + len("1")


def test_response_cache_evicts_the_least_recently_used_within_max_bytes() -> None:
    cache = ResponseCache(max_bytes=1000)
    # two entries of 240 bytes per app: within each app's half, so only the whole cache's
    # limit evicts here (three apps are needed to fill it)
    keys = [(APP, "https://a.example/0"), (APP, "https://a.example/1"),
            (OTHER, "https://a.example/0"), (OTHER, "https://a.example/1"),
            ("gamma", "https://a.example/0")]
    for key in keys[:4]:
        cache.put(key, _response(b"x" * 240), ttl_s=60, now=0.0)
    assert cache.stats()["bytes"] == 960
    assert cache.get(keys[0], "r", now=1.0) is not None      # now the most recently used
    cache.put(keys[4], _response(b"x" * 240), ttl_s=60, now=1.0)
    assert cache.stats()["bytes"] <= 1000
    present = [cache.get(key, "r", now=2.0) is not None for key in keys]
    assert present == [True, False, True, True, True]       # keys[1] was the oldest
    # replacing an entry counts its bytes once
    cache.put(keys[4], _response(b"y" * 100), ttl_s=60, now=3.0)
    assert cache.stats()["bytes"] == 240 * 3 + 100


def test_one_app_holds_at_most_half_of_the_cache_its_own_oldest_out_first() -> None:
    cache = ResponseCache(max_bytes=1000)
    cache.put((APP, "u0"), _response(b"x" * 240), ttl_s=60, now=0.0)
    cache.put((OTHER, "u0"), _response(b"x" * 240), ttl_s=60, now=0.0)     # older than u1
    cache.put((APP, "u1"), _response(b"x" * 240), ttl_s=60, now=0.0)
    assert cache.stats()["bytes"] == 720
    cache.put((APP, "u2"), _response(b"x" * 240), ttl_s=60, now=0.0)
    # 960 bytes fit the cache, but alpha's 720 are over its half: its own oldest goes, not
    # beta's (older still)
    assert cache.stats() == {"entries": 3, "bytes": 720, "hits": {}, "misses": {}}
    present = [cache.get(key, "r", now=1.0) is not None
               for key in ((APP, "u0"), (APP, "u1"), (APP, "u2"), (OTHER, "u0"))]
    assert present == [False, True, True, True]
    # an app filling the cache leaves the other app's entries in it
    for i in range(3, 20):
        cache.put((APP, f"u{i}"), _response(b"x" * 240), ttl_s=60, now=2.0)
    assert cache.get((OTHER, "u0"), "r", now=3.0) is not None
    assert cache.stats()["entries"] == 3 and cache.stats()["bytes"] == 720


def test_response_cache_keys_may_hold_the_request_headers() -> None:
    cache = ResponseCache(max_bytes=10_000)
    url = "https://a.example/x"
    one, two = (APP, url, (("x-api-key", "one"),)), (APP, url, (("x-api-key", "two"),))
    cache.put(one, _response(b"for one"), ttl_s=60, now=0.0)
    assert cache.get(two, "r", now=1.0) is None
    assert cache.get((APP, url, ()), "r", now=1.0) is None
    hit = cache.get(one, "r", now=1.0)
    assert hit is not None and hit.body == b"for one"
    cache.forget_app(APP)           # the app is the key's first element, whatever follows
    assert cache.stats()["entries"] == 0 and cache.stats()["bytes"] == 0


def test_an_entry_over_a_quarter_of_the_cache_is_not_cached() -> None:
    cache = ResponseCache(max_bytes=1000)
    cache.put((APP, "u1"), _response(b"x" * 250), ttl_s=60, now=0.0)
    cache.put((APP, "u2"), _response(b"x" * 246, headers=[("ab", "cd")]), ttl_s=60, now=0.0)
    cache.put((APP, "u3"), _response(b"x" * 251), ttl_s=60, now=0.0)
    assert cache.get((APP, "u1"), "r", now=1.0) is not None
    assert cache.get((APP, "u2"), "r", now=1.0) is not None     # exactly a quarter, headers in
    assert cache.get((APP, "u3"), "r", now=1.0) is None
    assert cache.stats()["entries"] == 2


def test_response_cache_forgets_one_app() -> None:
    cache = ResponseCache(max_bytes=10_000)
    for app in (APP, OTHER):
        for i in range(2):
            cache.put((app, f"u{i}"), _response(b"abc"), ttl_s=60, now=0.0)
    cache.forget_app(APP)
    assert cache.stats()["entries"] == 2 and cache.stats()["bytes"] == 6
    assert cache.get((APP, "u0"), "r", now=1.0) is None
    assert cache.get((OTHER, "u0"), "r", now=1.0) is not None


# == NetPolicy ==============================================================================


@pytest.fixture
async def policy(db: Database) -> NetPolicy:
    policy = NetPolicy(db, op_timeout_s=10)
    await policy.load()
    return policy


async def test_rules_are_added_listed_replaced_and_removed(policy: NetPolicy) -> None:
    assert policy.rules() == () and not policy.restricts(APP)
    rule = await policy.allow("API.Example.com.", rate_per_s=5, burst=10, cache_ttl_s=60)
    assert rule.entry == parse_allow_entry("API.Example.com.")
    assert (rule.app, rule.entry.canonical, rule.rate_per_s, rule.burst, rule.cache_ttl_s) == \
        (None, "api.example.com", 5.0, 10, 60)
    assert rule.to_json() == {"app": None, "domain": "api.example.com", "rate_per_s": 5.0,
                              "burst": 10, "cache_ttl_s": 60, "created_at": rule.created_at}
    assert rule.created_at.endswith("Z")
    await policy.allow("*.example.com", app=APP)
    await policy.allow("HTTP://B.example:8080/", app=OTHER)
    assert [(r.app, r.entry.canonical) for r in policy.rules()] == [
        (None, "api.example.com"), (APP, "*.example.com"), (OTHER, "http://b.example:8080")]
    assert [(r.app, r.entry.canonical) for r in policy.rules(APP)] == [
        (None, "api.example.com"), (APP, "*.example.com")]
    assert [r.to_json()["domain"] for r in policy.rules(OTHER)] == [
        "api.example.com", "http://b.example:8080"]
    # the same app and entry, however it is spelled: replaced, not added
    await policy.allow("https://api.example.com:443/", rate_per_s=1)
    assert len(policy.rules()) == 3
    replaced = policy.rule_for(OTHER, parse_url("https://api.example.com/"))
    assert replaced is not None and (replaced.rate_per_s, replaced.burst) == (1.0, None)
    # the same host on another scheme or port: another rule
    await policy.allow("http://api.example.com")
    await policy.allow("api.example.com:8443")
    assert len(policy.rules()) == 5
    assert await policy.remove("HTTP://api.example.com:80") == "http://api.example.com"
    assert await policy.remove("https://api.example.com:8443/") == "api.example.com:8443"
    assert await policy.remove("*.example.com", app=APP) == "*.example.com"
    assert [(r.app, r.entry.canonical) for r in policy.rules()] == [
        (None, "api.example.com"), (OTHER, "http://b.example:8080")]


async def test_removing_an_absent_rule_is_not_found(policy: NetPolicy) -> None:
    await policy.allow("a.example", app=APP)
    with pytest.raises(NotFound, match="every app"):
        await policy.remove("a.example")                # the rule is alpha's, not global
    with pytest.raises(NotFound, match="'beta'"):
        await policy.remove("a.example", app=OTHER)
    with pytest.raises(NotFound):
        await policy.remove("*.a.example", app=APP)
    with pytest.raises(NotFound, match=_re("no net rule for http://a.example")):
        await policy.remove("http://a.example", app=APP)     # another scheme: another entry
    with pytest.raises(NotFound, match=_re("no net rule for a.example:8443")):
        await policy.remove("a.example:8443", app=APP)
    assert len(policy.rules()) == 1


@pytest.mark.parametrize(("domain", "reason"), [
    ("*", "whole Internet"), ("https://*", "whole Internet"), ("*.com", "top-level domain"),
    ("a.*.com", "first label"), ("ftp://a.example", "only http and https"),
    ("a.example/x", "no path"), ("u@a.example", "no path, query or credentials"),
    ("a.example:0", "port '0'"), ("127.1", "non-standard form"),
    ("2001:db8::1", "written in brackets"), ("[a.example]", "brackets hold an IPv6"),
    ("", "must be a host"), (None, "must be a host"), (5, "must be a host"),
])
async def test_a_bad_rule_entry_is_a_bad_request(policy: NetPolicy, domain: object,
                                                 reason: str) -> None:
    with pytest.raises(BadRequest, match=_re(reason)):
        await policy.allow(domain)
    with pytest.raises(BadRequest, match=_re(reason)):
        await policy.remove(domain)
    assert policy.rules() == ()


@pytest.mark.parametrize(("domain", "canonical"), [
    ("http://a.example", "http://a.example"),
    ("a.example:443", "a.example"),
    ("HTTPS://a.example:8443", "a.example:8443"),
    ("http://*.a.example:8080", "http://*.a.example:8080"),
    ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
])
async def test_a_rule_takes_any_allow_entry(policy: NetPolicy, domain: str,
                                            canonical: str) -> None:
    rule = await policy.allow(domain)
    assert rule.to_json()["domain"] == canonical
    assert [r.entry.canonical for r in policy.rules()] == [canonical]
    await policy.remove(canonical)
    assert policy.rules() == ()


@pytest.mark.parametrize("kwargs", [
    {"rate_per_s": -1}, {"rate_per_s": True}, {"rate_per_s": "5"}, {"rate_per_s": 1e9},
    {"rate_per_s": math.nan}, {"burst": 0}, {"burst": 1.5}, {"burst": True},
    {"cache_ttl_s": -1}, {"cache_ttl_s": 86_400 * 31}, {"cache_ttl_s": "60"},
])
async def test_bad_rule_limits_are_bad_requests(policy: NetPolicy, kwargs: dict[str, Any]) \
        -> None:
    with pytest.raises(BadRequest):
        await policy.allow("a.example", **kwargs)
    assert policy.rules() == ()


async def test_a_rule_for_an_unknown_app_is_refused(policy: NetPolicy) -> None:
    with pytest.raises(AppNotFound):
        await policy.allow("a.example", app="nope")
    assert policy.rules() == ()


async def test_rule_for_prefers_own_then_exact_then_longer_wildcard(policy: NetPolicy) -> None:
    await policy.allow("*.example.com", rate_per_s=1)
    await policy.allow("*.api.example.com", rate_per_s=2)
    await policy.allow("x.api.example.com", rate_per_s=3)
    await policy.allow("*.example.com", app=APP, rate_per_s=4)

    def rate(app: str, host: str) -> float | None:
        rule = policy.rule_for(app, parse_url(f"https://{host}/"))
        return None if rule is None else rule.rate_per_s

    assert rate(OTHER, "x.api.example.com") == 3        # exact over wildcards
    assert rate(OTHER, "y.api.example.com") == 2        # the longer wildcard
    assert rate(OTHER, "z.example.com") == 1
    assert rate(OTHER, "example.com") is None           # no wildcard covers the apex
    assert rate(OTHER, "evilexample.com") is None
    assert rate(APP, "x.api.example.com") == 4          # the app's own over any global one
    assert rate(APP, "other.net") is None
    await policy.allow("x.api.example.com", app=APP, rate_per_s=5)
    assert rate(APP, "x.api.example.com") == 5          # own exact over own wildcard
    assert rate(APP, "y.api.example.com") == 4


async def test_rule_for_matches_the_scheme_and_port_too(policy: NetPolicy) -> None:
    await policy.allow("a.example.com", rate_per_s=1)                   # https on 443
    await policy.allow("http://a.example.com", app=APP, rate_per_s=2)
    await policy.allow("*.example.com:8443", rate_per_s=3)
    await policy.allow("http://*.example.com:8080", app=APP, rate_per_s=4)

    def rate(app: str, url: str) -> float | None:
        rule = policy.rule_for(app, parse_url(url))
        return None if rule is None else rule.rate_per_s

    assert rate(APP, "https://a.example.com/") == 1    # the app's own rule is for http only
    assert rate(APP, "http://a.example.com/") == 2
    assert rate(OTHER, "http://a.example.com/") is None
    assert rate(OTHER, "https://a.example.com:8443/") == 3     # only the wildcard names 8443
    assert rate(APP, "https://a.example.com:8443/") == 3
    assert rate(OTHER, "http://a.example.com:8443/") is None
    assert rate(OTHER, "https://b.example.com/") is None       # the wildcard is for 8443
    assert rate(APP, "http://b.example.com:8080/") == 4
    assert rate(APP, "http://a.example.com:8080/") == 4        # own wildcard over nothing
    assert rate(APP, "https://b.example.com:8080/") is None
    assert rate(OTHER, "http://b.example.com:8080/") is None


async def test_restricts_once_a_rule_applies_to_the_app(policy: NetPolicy) -> None:
    await policy.allow("a.example", app=APP)
    assert (policy.restricts(APP), policy.restricts(OTHER)) == (True, False)
    await policy.allow("b.example")
    assert (policy.restricts(APP), policy.restricts(OTHER)) == (True, True)
    await policy.remove("b.example")
    await policy.remove("a.example", app=APP)
    assert (policy.restricts(APP), policy.restricts(OTHER)) == (False, False)


async def test_secrets_are_set_replaced_and_removed(policy: NetPolicy) -> None:
    secret = await policy.set_secret("TOKEN", "first-value", inject="bearer", app=APP)
    assert (secret.app, secret.name, secret.inject, secret.param, secret.shown_as,
            secret.domain) == (APP, "TOKEN", "bearer", None, "bearer", None)
    found = policy.secret(APP, "TOKEN")
    assert found is not None and found.value == "first-value"
    assert policy.secret(OTHER, "TOKEN") is None
    await policy.set_secret("TOKEN", "second-value", inject="header:X-Api-Key", app=APP,
                            domain="API.Example.com")
    assert len(policy.secrets()) == 1
    found = policy.secret(APP, "TOKEN")
    assert found is not None
    assert (found.value, found.inject, found.param, found.shown_as, found.domain) == \
        ("second-value", "header", "X-Api-Key", "header:X-Api-Key",
         parse_allow_entry("api.example.com"))
    assert found.to_json()["domain"] == "api.example.com"
    query = await policy.set_secret("KEY", "v a l", inject="query:api_key",
                                    domain="http://api.example.com:8080")
    assert query.domain is not None
    assert (query.inject, query.param, query.app, query.domain.canonical) == \
        ("query", "api_key", None, "http://api.example.com:8080")
    await policy.remove_secret("TOKEN", app=APP)
    assert policy.secret(APP, "TOKEN") is None
    with pytest.raises(NotFound, match="'alpha'"):
        await policy.remove_secret("TOKEN", app=APP)
    with pytest.raises(NotFound, match="every app"):
        await policy.remove_secret("TOKEN")
    assert [s.name for s in policy.secrets()] == ["KEY"]


async def test_an_apps_own_secret_shadows_the_global_one(policy: NetPolicy) -> None:
    await policy.set_secret("TOKEN", "global-value", inject="bearer", domain="a.example")
    await policy.set_secret("TOKEN", "alpha-value", inject="bearer", app=APP)
    own, shared = policy.secret(APP, "TOKEN"), policy.secret(OTHER, "TOKEN")
    assert own is not None and shared is not None
    assert (own.value, shared.value) == ("alpha-value", "global-value")
    await policy.remove_secret("TOKEN", app=APP)
    fallback = policy.secret(APP, "TOKEN")
    assert fallback is not None and fallback.value == "global-value"


@pytest.mark.parametrize("inject", [
    "header:Host", "header:host", "header:Content-Length", "header:Transfer-Encoding",
    "header:X Api", "header:X-Api:Key", "header:", "header", "query", "query:", "query:a b",
    "bearer:x", "cookie", "cookie:session", "Bearer", "", 5, None,
])
async def test_bad_injections_are_refused(policy: NetPolicy, inject: Any) -> None:
    with pytest.raises(BadRequest):
        await policy.set_secret("TOKEN", "value-123", inject=inject, app=APP)
    assert policy.secrets() == ()


@pytest.mark.parametrize(("inject", "value"), [
    ("bearer", "abc\r\nX-Evil: 1"), ("bearer", "abc\ndef"), ("header:X-Api-Key", "abc\rdef"),
    ("header:X-Api-Key", "abc\x00def"), ("bearer", "tab\there"), ("query:key", "abc\ndef"),
    ("query:key", "abc\x00"), ("bearer", ""), ("bearer", 5), ("bearer", None),
    ("bearer", "tökén-value-1234"), ("header:X-Api-Key", "tökén-value-1234"),
    ("header:X-Api-Key", "€uro"), ("bearer", "abc\x7f"), ("header:X-Api-Key", "tab\there"),
])
async def test_secret_values_that_cannot_be_sent_are_refused(policy: NetPolicy, inject: str,
                                                             value: Any) -> None:
    with pytest.raises(BadRequest):
        await policy.set_secret("TOKEN", value, inject=inject, app=APP)
    assert policy.secrets() == ()


@pytest.mark.parametrize(("inject", "value"), [
    ("bearer", "a b ~!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}"),   # visible ASCII and space
    ("header:X-Api-Key", SECRET),
    ("query:key", "tökén-value-1234"),      # URL-encoded when sent: any text
    ("query:key", "tab\there"),
])
async def test_secret_values_that_can_be_sent_are_accepted(policy: NetPolicy, inject: str,
                                                           value: str) -> None:
    secret = await policy.set_secret("TOKEN", value, inject=inject, domain="a.example")
    found = policy.secret(APP, "TOKEN")
    assert found == secret and found.value == value


async def test_secret_size_names_apps_and_domains_are_checked(policy: NetPolicy) -> None:
    with pytest.raises(PayloadTooLarge):
        await policy.set_secret("TOKEN", "x" * (MAX_SECRET_BYTES + 1), inject="bearer",
                                app=APP)
    with pytest.raises(PayloadTooLarge):        # bytes, not characters
        await policy.set_secret("TOKEN", "é" * (MAX_SECRET_BYTES // 2 + 1), inject="bearer",
                                app=APP)
    for name in ("token", "1TOKEN", "", "A" * 65, 5):
        with pytest.raises(BadRequest, match="secret name"):
            await policy.set_secret(name, "value", inject="bearer", app=APP)
    with pytest.raises(AppNotFound):
        await policy.set_secret("TOKEN", "value", inject="bearer", app="nope")
    # the domain is an allow entry: what the manifest grammar refuses, --domain refuses
    for domain, reason in (("*.com", "top-level domain"), ("ftp://a.example", "only http"),
                           ("a.example/x", "no path"), ("a.example:0", "port '0'"), ("*", "whole")):
        with pytest.raises(BadRequest, match=_re(reason)):
            await policy.set_secret("TOKEN", "value", inject="bearer", domain=domain)
        with pytest.raises(BadRequest, match=_re(reason)):
            await policy.set_secret("TOKEN", "value", inject="bearer", app=APP, domain=domain)
    assert policy.secrets() == ()
    largest = await policy.set_secret("TOKEN", "x" * MAX_SECRET_BYTES, inject="bearer",
                                      app=APP)
    assert len(largest.value) == MAX_SECRET_BYTES


async def test_a_secret_for_every_app_must_have_a_domain(policy: NetPolicy) -> None:
    with pytest.raises(BadRequest, match="--domain"):
        await policy.set_secret("TOKEN", "value-123", inject="bearer")
    with pytest.raises(BadRequest, match="--domain"):
        await policy.set_secret("TOKEN", "value-123", inject="query:key", domain=None)
    assert policy.secrets() == ()
    own = await policy.set_secret("TOKEN", "value-123", inject="bearer", app=APP)
    assert own.domain is None                   # an app's own: the origin each call names
    shared = await policy.set_secret("TOKEN", "value-123", inject="bearer",
                                     domain="api.example.com")
    assert shared.app is None and shared.domain is not None
    assert [(s.app, s.domain) for s in policy.secrets()] == [
        (None, parse_allow_entry("api.example.com")), (APP, None)]


@pytest.mark.parametrize(("domain", "canonical", "matching", "not_matching"), [
    ("api.example.com", "api.example.com", "https://api.example.com/x",
     ["http://api.example.com/x", "https://api.example.com:8443/x",
      "https://www.api.example.com/"]),
    ("HTTPS://API.Example.com:443/", "api.example.com", "https://api.example.com/",
     ["http://api.example.com/"]),
    ("http://x.example:8080", "http://x.example:8080", "http://x.example:8080/y",
     ["http://x.example/y", "https://x.example:8080/y", "http://x.example:8081/y"]),
    ("*.example.com", "*.example.com", "https://a.b.example.com/",
     ["https://example.com/", "http://a.example.com/", "https://a.example.com:8443/"]),
    ("a.example:8443", "a.example:8443", "https://a.example:8443/",
     ["https://a.example/", "http://a.example:8443/"]),
])
async def test_a_secrets_domain_is_an_allow_entry(policy: NetPolicy, domain: str,
                                                  canonical: str, matching: str,
                                                  not_matching: list[str]) -> None:
    secret = await policy.set_secret("TOKEN", "value-123", inject="bearer", domain=domain)
    found = policy.secret(APP, "TOKEN")
    assert found is not None and found.domain is not None and secret.domain is not None
    assert (secret.domain.canonical, found.domain.canonical) == (canonical, canonical)
    assert found.to_json()["domain"] == canonical
    assert found.domain.matches(parse_url(matching))
    assert not any(found.domain.matches(parse_url(url)) for url in not_matching)


@pytest.mark.parametrize(("value", "masked"), [
    ("Q", "**** (1 character)"),
    ("Q7", "**** (2 characters)"),
    ("short-1", "**** (7 characters)"),
    ("exactly15chars!", "**** (15 characters)"),
    ("a-value-of-16-ch", "****6-ch (16 characters)"),
    ("a-much-longer-secret-value-9f3k", "****9f3k (31 characters)"),
])
async def test_a_secret_is_shown_masked_never_whole(policy: NetPolicy, value: str,
                                                    masked: str) -> None:
    secret = await policy.set_secret("TOKEN", value, inject="query:key", domain="a.example")
    assert secret.masked() == masked
    assert value not in secret.masked()
    shown = secret.to_json()
    assert shown == {"app": None, "name": "TOKEN", "as": "query:key", "domain": "a.example",
                     "value": secret.masked(), "updated_at": secret.updated_at}
    assert value not in json.dumps(shown) and value not in repr(secret)


async def test_rules_and_secrets_survive_a_reload(db: Database, policy: NetPolicy) -> None:
    await policy.allow("*.example.com", rate_per_s=2.5, burst=3, cache_ttl_s=30)
    await policy.allow("a.example", app=APP)
    await policy.allow("HTTP://B.example:8080/", app=APP, burst=7)
    await policy.set_secret("TOKEN", "alpha-value", inject="header:X-Key", app=APP,
                            domain="*.example.com")
    await policy.set_secret("TOKEN", "global-value", inject="bearer",
                            domain="HTTP://Up.example:8080/")
    await policy.set_secret("OWN", "own-value", inject="bearer", app=APP)
    reloaded = NetPolicy(db, op_timeout_s=10)
    assert reloaded.rules() == ()
    await reloaded.load()
    assert reloaded.rules() == policy.rules()
    assert reloaded.secrets() == policy.secrets()
    own = reloaded.secret(APP, "TOKEN")
    assert own is not None and own.domain is not None
    assert (own.value, own.domain.canonical, own.domain.pattern) == \
        ("alpha-value", "*.example.com", HostPattern("example.com", True))
    shared = reloaded.secret(OTHER, "TOKEN")
    assert shared is not None and shared.domain is not None
    assert (shared.value, shared.domain.canonical) == ("global-value", "http://up.example:8080")
    unbound = reloaded.secret(APP, "OWN")
    assert unbound is not None and unbound.domain is None
    rule = reloaded.rule_for(OTHER, parse_url("https://x.example.com/"))
    assert rule is not None and (rule.rate_per_s, rule.burst, rule.cache_ttl_s) == (2.5, 3, 30)
    http = reloaded.rule_for(APP, parse_url("http://b.example:8080/"))
    assert http is not None and (http.entry.canonical, http.burst) == ("http://b.example:8080", 7)
    assert reloaded.rule_for(APP, parse_url("https://b.example:8080/")) is None


async def test_forget_drops_an_apps_rules_and_secrets_from_memory(policy: NetPolicy) -> None:
    await policy.allow("a.example", app=APP)
    await policy.allow("b.example")
    await policy.set_secret("TOKEN", "value", inject="bearer", app=APP)
    await policy.set_secret("SHARED", "value", inject="bearer", domain="b.example")
    policy.forget(APP)
    assert [(r.app, r.entry.canonical) for r in policy.rules()] == [(None, "b.example")]
    assert [(s.app, s.name) for s in policy.secrets()] == [(None, "SHARED")]


# == NetLog =================================================================================


def _entry(app: str = APP, *, path: str = "/p", status: int | None = 200,
           error: str | None = None, host: str = "good.test") -> NetCall:
    return NetCall(ts=now_iso_ms(), app=app, request_id="req-1", method="GET", host=host,
                   path=path, status=status, bytes_out=3, bytes_in=10, duration_ms=1.5,
                   error=error, cached=False)


async def _flush(log: NetLog) -> None:
    """Run the log until it has started, then stop it: stopping writes what is buffered."""
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        nursery.cancel_scope.cancel()


async def test_recorded_entries_are_written_and_read_by_id(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10, flush_interval_s=3600)
    for i in range(5):
        log.record(_entry(APP if i % 2 == 0 else OTHER, path=f"/{i}"))
    assert log.stats() == {"buffered": 5, "dropped": 0, "written": 0}
    assert await log.read() == []           # nothing is written before a flush
    await _flush(log)
    assert log.stats() == {"buffered": 0, "dropped": 0, "written": 5}
    entries = await log.read()
    assert [e.path for e in entries] == ["/0", "/1", "/2", "/3", "/4"]
    ids = [e.id for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [e.path for e in await log.read(limit=2)] == ["/3", "/4"]            # the newest
    assert [e.path for e in await log.read(after=ids[1], limit=2)] == ["/2", "/3"]
    assert [e.path for e in await log.read(after=ids[4])] == []
    assert [e.path for e in await log.read(app=OTHER)] == ["/1", "/3"]
    assert [e.path for e in await log.read(app=APP, after=ids[0])] == ["/2", "/4"]
    first = entries[0]
    assert first.to_json() == {"id": ids[0], "ts": first.ts, "app": APP,
                               "request_id": "req-1", "method": "GET", "host": "good.test",
                               "path": "/0", "status": 200, "bytes_out": 3, "bytes_in": 10,
                               "duration_ms": 1.5, "error": None, "cached": False}


async def test_wait_returns_once_a_newer_entry_is_written(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10, flush_interval_s=3600)
    log.record(_entry(path="/old"))
    await _flush(log)
    (old,) = await log.read()
    returned = trio.Event()

    async def follower() -> None:
        await log.wait(old.id, timeout_s=60)
        returned.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            nursery.start_soon(follower)
            log.record(_entry(path="/ok"))      # a success waits for the flush interval
            await trio.testing.wait_all_tasks_blocked()
            assert not returned.is_set()
            log.record(_entry(path="/failed", error="net_timeout", status=None))
            await returned.wait()               # an error is written at once
            nursery.cancel_scope.cancel()
    assert [e.path for e in await log.read(after=old.id)] == ["/ok", "/failed"]
    with trio.fail_after(10):
        await log.wait(old.id, timeout_s=60)    # already there: at once


async def test_wait_times_out_without_a_newer_entry(db: Database,
                                                    autojump_clock: trio.abc.Clock) -> None:
    log = NetLog(db, op_timeout_s=10)
    started = trio.current_time()
    await log.wait(0, timeout_s=30)
    assert trio.current_time() - started == pytest.approx(30)
    started = trio.current_time()
    await log.wait(-1, timeout_s=30)            # id 0 is newer than -1
    assert trio.current_time() == started
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log.wait, 0, 3600)
        await trio.testing.wait_all_tasks_blocked()
        log.release_waiters()
    assert trio.current_time() - started < 1
    await log.wait(0, timeout_s=3600)           # released: later waits return at once too
    assert trio.current_time() - started < 1


async def test_delete_app_removes_written_and_buffered_entries(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10)
    log.record(_entry(APP, path="/a1"))
    log.record(_entry(OTHER, path="/b1"))
    await _flush(log)
    log.record(_entry(APP, path="/a2"))
    log.record(_entry(OTHER, path="/b2"))
    await log.delete_app(APP)
    assert log.stats()["buffered"] == 1
    await _flush(log)
    assert [(e.app, e.path) for e in await log.read()] == [(OTHER, "/b1"), (OTHER, "/b2")]


async def test_prune_keeps_the_newest_entries_every_prune_every(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10, keep=5)
    for i in range(PRUNE_EVERY - 1):
        log.record(_entry(path=f"/{i}"))
    await _flush(log)
    assert len(await log.read(limit=PRUNE_EVERY * 2)) == PRUNE_EVERY - 1   # not yet
    log.record(_entry(path="/last"))
    await _flush(log)
    kept = await log.read(limit=PRUNE_EVERY * 2)
    assert [e.path for e in kept] == [f"/{i}" for i in range(PRUNE_EVERY - 5, PRUNE_EVERY - 1)] \
        + ["/last"]
    log.record(_entry(path="/next"))            # the count starts again after a prune
    await _flush(log)
    assert len(await log.read(limit=PRUNE_EVERY * 2)) == 6


async def test_prune_keeps_each_apps_newest_entries(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10, keep=5)
    for i in range(3):
        log.record(_entry(OTHER, path=f"/b{i}"))
    for i in range(10):
        log.record(_entry("gamma", path=f"/g{i}"))
    await _flush(log)                           # not yet a prune: written since, remembered
    for i in range(PRUNE_EVERY - 13):
        log.record(_entry(APP, path=f"/a{i}"))
    await _flush(log)
    kept = await log.read(limit=PRUNE_EVERY * 2)
    # alpha's many calls do not push beta's history out; each app keeps its newest five
    assert [e.path for e in kept if e.app == OTHER] == ["/b0", "/b1", "/b2"]
    assert [e.path for e in kept if e.app == "gamma"] == [f"/g{i}" for i in range(5, 10)]
    assert [e.path for e in kept if e.app == APP] == \
        [f"/a{i}" for i in range(PRUNE_EVERY - 18, PRUNE_EVERY - 13)]
    assert len(kept) == 13


async def test_entries_past_the_buffer_are_dropped_and_counted(db: Database) -> None:
    log = NetLog(db, op_timeout_s=10, max_buffer=2)
    for i in range(4):
        log.record(_entry(path=f"/{i}"))
    assert log.stats() == {"buffered": 2, "dropped": 2, "written": 0}
    await _flush(log)
    assert [e.path for e in await log.read()] == ["/0", "/1"]


# == NetProvider.fetch against a real server ================================================


@dataclass
class Upstream:
    """A local HTTP server answering for good.test and other.test; it records what it saw."""

    port: int = 0
    tls_port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0
    peak: int = 0
    release: trio.Event = field(default_factory=trio.Event)
    arrivals: tuple[trio.MemorySendChannel[str], trio.MemoryReceiveChannel[str]] = \
        field(default_factory=lambda: trio.open_memory_channel[str](math.inf))


def make_app(up: Upstream) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path, query = scope["path"], scope["query_string"].decode("latin-1")
        seen = {"method": scope["method"], "scheme": scope["scheme"],
                "host": headers.get("host", "").split(":")[0],
                "path": path, "query": query, "headers": headers,
                "body": body.decode("latin-1")}
        up.requests.append(seen)
        status, extra = 200, []
        if path == "/block":
            up.active += 1
            up.peak = max(up.peak, up.active)
            up.arrivals[0].send_nowait(path)
            try:
                await up.release.wait()
            finally:
                up.active -= 1
        elif path == "/slow":
            await trio.sleep_forever()
        elif path == "/cross":
            status, extra = 302, [(b"location", f"http://other.test:{up.port}/echo".encode())]
        elif path == "/keep-query":      # as a server adding a trailing slash would
            status, extra = 301, [(b"location", b"/echo?" + scope["query_string"])]
        elif path == "/downgrade":      # https -> plain http, on the same host
            status, extra = 302, [(b"location", f"http://good.test:{up.port}/echo".encode())]
        elif path == "/cross-keep-query":
            status, extra = 302, [(b"location", f"http://other.test:{up.port}/echo?".encode()
                                   + scope["query_string"])]
        elif path == "/upgrade":        # http -> https, on the same host
            status, extra = 302, [(b"location",
                                   f"https://good.test:{up.tls_port}/echo".encode())]
        elif path == "/tls-hop":        # https -> https, to another host
            status, extra = 302, [(b"location",
                                   f"https://b.wild.test:{up.tls_port}/echo".encode())]
        elif path == "/into-path":      # the query's api_key value, moved into the path
            key = urllib.parse.parse_qs(query).get("api_key", [""])[0]
            status, extra = 302, [(b"location",
                                   f"/landed/{urllib.parse.quote(key, safe='')}".encode())]
        elif path == "/nostore":
            extra = [(b"cache-control", b"no-store")]
        elif path == "/with":           # the response headers the query string names
            extra = [(k.encode(), v.encode()) for k, v in urllib.parse.parse_qsl(query)]
        elif path == "/missing":
            status = 404
        elif path.startswith("/status/"):     # /status/206: that status, the echo as body
            status = int(path.rsplit("/", 1)[1])
        extra += [(b"x-echo-auth", headers.get("authorization", "").encode("latin-1")),
                  (b"x-echo-key", headers.get("x-api-key", "").encode("latin-1")),
                  (b"x-echo-query", scope["query_string"])]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra]})
        await send({"type": "http.response.body", "body": orjson.dumps(seen)})

    return app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Net:
    upstream: Upstream
    egress: Egress
    policy: NetPolicy
    log: NetLog
    clock: FakeClock
    provider: NetProvider

    def url(self, path: str = "/echo", host: str = "good.test") -> str:
        return f"http://{host}:{self.upstream.port}{path}"

    def request(self, *, allow: list[str] | None = None, secrets: tuple[str, ...] = (),
                timeout_ms: int | None = None) -> NetRequest:
        port = self.upstream.port
        section: dict[str, Any] = {
            "allow": allow or [f"http://good.test:{port}", f"http://other.test:{port}"],
            "secrets": list(secrets)}
        if timeout_ms is not None:
            section["timeoutMs"] = timeout_ms
        request = parse_capabilities({"net": section}).get("net")
        assert isinstance(request, NetRequest)
        return request

    def limit(self, limits: NetLimits) -> None:
        self.provider = NetProvider(self.egress, self.policy, self.log, limits=limits,
                                    clock=self.clock)

    async def fetch(self, url: str, options: dict[str, Any] | None = None, *,
                    body: Any = None, request: NetRequest | None = None,
                    local: dict[str, Any] | None = None, app: str = APP,
                    policy: BudgetPolicy | None = None) -> Binary:
        args: list[Any] = [url]
        if options is not None or body is not None:
            args.append(options)
        if body is not None:
            args.append(body)
        call = Call(app=app, budget=Budget.start(policy or BudgetPolicy()),
                    requested=request or self.request(), request_id="req-1",
                    local={} if local is None else local)
        result = await self.provider.provider().methods["fetch"](call, args)
        assert isinstance(result, Binary)
        return result


@pytest.fixture
async def tls_port(net: Net, nursery: trio.Nursery, ca: trustme.CA) -> int:
    """The same upstream over HTTPS too (a certificate for the local names)."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    with ca.issue_cert(*LOCAL_NAMES).private_key_and_cert_chain_pem.tempfile() as pem:
        config.certfile = config.keyfile = pem
        binds = await nursery.start(serve, make_app(net.upstream), config)
    net.upstream.tls_port = int(binds[0].rsplit(":", 1)[1])
    return net.upstream.tls_port


def echoed(result: Binary) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(result.data)
    return data


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def net(nursery: trio.Nursery, db: Database, ca: trustme.CA) -> AsyncIterator[Net]:
    upstream = Upstream()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    binds = await nursery.start(serve, make_app(upstream), config)
    upstream.port = int(binds[0].rsplit(":", 1)[1])
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    egress = Egress(resolver=StaticResolver({name: ["127.0.0.1"] for name in LOCAL_NAMES}),
                    ssl_context=trusting,
                    permit=lambda host, a: host in LOCAL_NAMES and str(a) == "127.0.0.1")
    policy = NetPolicy(db, op_timeout_s=10)
    await policy.load()
    log = NetLog(db, op_timeout_s=10, flush_interval_s=3600)
    clock = FakeClock()
    try:
        yield Net(upstream, egress, policy, log, clock,
                  NetProvider(egress, policy, log, clock=clock))
    finally:
        await egress.aclose()


async def test_fetch_returns_status_headers_url_and_body(net: Net) -> None:
    result = await net.fetch(net.url("/echo?x=1&y=%C3%BC"),
                             {"headers": {"Accept": "application/json", "X-Num": 5,
                                          "X-Float": 1.5}})
    assert result.value == {
        "status": 200, "ok": True, "url": net.url("/echo?x=1&y=%C3%BC"), "redirected": False,
        "cached": False,
        "headers": {"content-type": "application/json", "x-echo-auth": "",
                    "x-echo-key": "", "x-echo-query": "x=1&y=%C3%BC",
                    "date": result.value["headers"]["date"],
                    "server": result.value["headers"]["server"]}}
    seen = echoed(result)
    assert seen == net.upstream.requests[-1]
    assert (seen["method"], seen["host"], seen["path"], seen["query"]) == \
        ("GET", "good.test", "/echo", "x=1&y=%C3%BC")
    assert (seen["headers"]["accept"], seen["headers"]["x-num"], seen["headers"]["x-float"]) \
        == ("application/json", "5", "1.5")
    missing = await net.fetch(net.url("/missing"), {"method": "delete"})
    assert (missing.value["status"], missing.value["ok"]) == (404, False)
    assert echoed(missing)["method"] == "DELETE"


async def test_bodies_json_and_content_types(net: Net) -> None:
    sent = echoed(await net.fetch(net.url(), {"method": "POST", "json": {"a": [1, "ü"]}}))
    assert (sent["headers"]["content-type"], sent["body"]) == \
        ("application/json", '{"a":[1,"ü"]}'.encode().decode("latin-1"))
    own = echoed(await net.fetch(net.url(), {"method": "PATCH", "json": {"a": 1},
                                             "headers": {"Content-Type": "application/x"}}))
    assert (own["headers"]["content-type"], own["body"]) == ("application/x", '{"a":1}')
    text = echoed(await net.fetch(net.url(), {"method": "PUT", "body": "hé"}))
    assert (text["headers"]["content-type"], text["body"]) == \
        ("text/plain;charset=UTF-8", "hé".encode().decode("latin-1"))
    raw = echoed(await net.fetch(net.url(), {"method": "POST"}, body=b"\x00\xff"))
    assert raw["body"] == "\x00\xff" and "content-type" not in raw["headers"]
    for empty in ({"method": "POST", "body": ""}, {"method": "PUT"}):     # given, or apart
        sent = echoed(await net.fetch(net.url(), empty, body=None if "body" in empty else ""))
        assert sent["body"] == "" and "content-type" not in sent["headers"]
    pairs = echoed(await net.fetch(net.url(), {"headers": [["X-A", "1"], ["X-B", 2]]}))
    assert (pairs["headers"]["x-a"], pairs["headers"]["x-b"]) == ("1", "2")


@pytest.mark.parametrize(("options", "message"), [
    ({"headers": {"Host": "evil.test"}}, "set by fazt"),
    ({"headers": {"content-length": "5"}}, "set by fazt"),
    ({"headers": {"Transfer-Encoding": "chunked"}}, "set by fazt"),
    ({"headers": {"X-A": "a\r\nX-B: b"}}, "visible ASCII"),
    ({"headers": {"X-A": "a\nb"}}, "visible ASCII"),
    ({"headers": {"X-A": "a\x00b"}}, "visible ASCII"),
    ({"headers": {"X-A": "a\x7fb"}}, "visible ASCII"),
    ({"headers": {"X-A": "a\x0bb"}}, "visible ASCII"),
    ({"headers": {"X-A": "€"}}, "visible ASCII"),
    ({"headers": {"X-A": "tökén"}}, "visible ASCII"),           # Latin-1 too
    ({"headers": {"X-A": "\x85"}}, "visible ASCII"),
    ({"headers": {"X-A": True}}, "must be a string"),
    ({"headers": {"X-A": {"b": 1}}}, "must be a string"),
    ({"headers": {"bad name": "x"}}, "not a valid header name"),
    ({"headers": {"X-A\r\n": "x"}}, "not a valid header name"),
    ({"headers": {"": "x"}}, "not a valid header name"),
    ({"headers": "X-A: 1"}, "headers must be an object"),
    ({"headers": [["X-A"]]}, "headers must be an object"),
    ({"headers": {f"X-{i}": "v" for i in range(101)}}, "at most 100 headers"),
    ({"headers": {"X-A": "v" * 17_000}}, "over 16384 bytes"),
    ({"body": "x"}, "a GET request cannot have a body"),
    ({"method": "HEAD", "json": {}}, "a HEAD request cannot have a body"),
    ({"method": "POST", "json": 1, "body": "x"}, "body or json, not both"),
    ({"method": "POST", "body": 5}, "body must be a string or bytes"),
    ({"method": "POST", "json": {1j}}, "json cannot be sent"),
    ({"method": "TRACE"}, "method must be one of"),
    ({"method": 5}, "method must be one of"),
    ({"timeoutMs": 0}, "timeoutMs must be a whole number"),
    ({"timeoutMs": 1.5}, "timeoutMs must be a whole number"),
    ({"timeoutMs": MAX_NET_TIMEOUT_MS + 1}, "timeoutMs must be a whole number"),
    ({"secret": 5}, "secret must be the name"),
    ({"cookies": {}}, "unknown option 'cookies'"),
])
async def test_bad_options_are_refused_before_any_connection(net: Net, options: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(CapabilityError, match=_re(message)):
        await net.fetch(net.url(), options)
    assert net.egress.backend.connects == 0 and net.upstream.requests == []


async def test_arguments_and_urls_are_checked(net: Net) -> None:
    provider = net.provider.provider()
    call = Call(app=APP, budget=Budget.start(BudgetPolicy()), requested=net.request())
    with pytest.raises(CapabilityError, match="takes 1 to 3 arguments"):
        await provider.methods["fetch"](call, [])
    with pytest.raises(CapabilityError, match="options must be an object"):
        await provider.methods["fetch"](call, [net.url(), "GET"])
    for url in ("ftp://good.test/", "http://user:pw@good.test/", "good.test/x", 5,
                "http://127.1/"):
        with pytest.raises(NetBadUrl):
            await net.fetch(url)            # type: ignore[arg-type]
    assert net.egress.backend.connects == 0


@pytest.mark.parametrize("url", [
    "http://evil.test/",                    # not in the manifest
    "https://good.test:{port}/",            # the scheme the manifest names is http
    "http://good.test/",                    # port 80, not the test port
    "http://good.test:{other}/",
    "http://127.0.0.1:{port}/",
    "http://sub.good.test:{port}/",         # an exact entry covers no subdomain
])
async def test_the_allowlist_refuses_before_any_connection(net: Net, url: str) -> None:
    url = url.format(port=net.upstream.port, other=net.upstream.port + 1)
    with pytest.raises(NetDenied, match="capabilities"):
        await net.fetch(url)
    assert net.egress.backend.connects == 0 and net.upstream.requests == []


async def test_a_redirect_outside_the_allowlist_is_not_followed(net: Net) -> None:
    request = net.request(allow=[f"http://good.test:{net.upstream.port}"])
    with pytest.raises(NetDenied, match=_re("a redirect to http://other.test")):
        await net.fetch(net.url("/cross"), request=request)
    assert [r["host"] for r in net.upstream.requests] == ["good.test"]
    followed = await net.fetch(net.url("/cross"))
    assert (followed.value["redirected"], followed.value["url"]) == \
        (True, net.url("/echo", host="other.test"))
    assert echoed(followed)["host"] == "other.test"


async def test_operator_rules_narrow_the_manifest_once_they_apply(net: Net) -> None:
    port = net.upstream.port
    await net.fetch(net.url())                          # no rules: the manifest decides
    await net.policy.allow(f"http://other.test:{port}", app=OTHER)     # another app's rule
    await net.fetch(net.url())
    await net.policy.allow(f"http://other.test:{port}")                # a rule for every app
    with pytest.raises(NetDenied, match="server's net rules"):
        await net.fetch(net.url())
    await net.fetch(net.url(host="other.test"))
    # a rule for the host, on another scheme or port, is not a rule for the URL
    await net.policy.allow("good.test", app=APP)                       # https on 443
    await net.policy.allow(f"good.test:{port}", app=APP)               # https on the port
    await net.policy.allow("http://good.test", app=APP)                # http on 80
    with pytest.raises(NetDenied, match="server's net rules"):
        await net.fetch(net.url())
    await net.policy.allow(f"http://good.test:{port}", app=APP)
    await net.fetch(net.url())
    # a rule does not widen the manifest
    await net.policy.allow(f"http://good.test:{port + 1}", app=APP)
    with pytest.raises(NetDenied, match="capabilities"):
        await net.fetch(f"http://good.test:{port + 1}/")
    assert [r["host"] for r in net.upstream.requests] == \
        ["good.test", "good.test", "other.test", "good.test"]


async def test_a_wildcard_rule_narrows_a_manifests_wildcard(net: Net) -> None:
    port = net.upstream.port
    request = net.request(allow=[f"http://*.wild.test:{port}"])
    await net.policy.allow(f"http://a.wild.test:{port}", app=APP)
    await net.fetch(net.url(host="a.wild.test"), request=request)
    with pytest.raises(NetDenied, match="server's net rules"):
        await net.fetch(net.url(host="b.wild.test"), request=request)
    await net.policy.allow(f"http://*.wild.test:{port}")
    await net.fetch(net.url(host="b.wild.test"), request=request)
    assert [r["host"] for r in net.upstream.requests] == ["a.wild.test", "b.wild.test"]


async def test_without_an_allow_list_only_the_operators_rules_decide(net: Net) -> None:
    port = net.upstream.port
    await net.policy.set_secret("ANY_NAME", SECRET, inject="bearer", app=APP)
    compat = NetRequest(allow=None, every_secret=True)
    with pytest.raises(NetDenied, match="server's net rules"):
        await net.fetch(net.url(), request=compat)
    # a rule for the host allows its scheme and port only (https on 443 here), not any port
    await net.policy.allow("good.test")
    await net.policy.allow(f"good.test:{port}")
    await net.policy.allow(f"http://*.good.test:{port}")
    await net.policy.allow(f"http://good.test:{port}", app=OTHER)     # beta's, not alpha's
    with pytest.raises(NetDenied, match=_re(f"fazt net allow http://good.test:{port} --app "
                                            f"{APP}")):
        await net.fetch(net.url(), request=compat)
    assert net.egress.backend.connects == 0
    await net.policy.allow(f"http://good.test:{port}")
    with pytest.raises(NetDenied, match="server's net rules"):        # another port
        await net.fetch(f"http://good.test:{port + 1}/", request=compat)
    with pytest.raises(NetDenied, match="server's net rules"):        # another host
        await net.fetch(net.url(host="other.test"), request=compat)
    assert net.egress.backend.connects == 0
    result = await net.fetch(net.url(), {"secret": "ANY_NAME"}, request=compat)
    assert net.upstream.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET.encode() not in result.data


async def test_a_request_makes_at_most_max_calls(net: Net) -> None:
    net.limit(NetLimits(max_calls=2))
    local: dict[str, Any] = {}
    with pytest.raises(NetDenied):                      # refused calls are not counted
        await net.fetch("http://evil.test/", local=local)
    for _ in range(2):
        await net.fetch(net.url(), local=local)
    with pytest.raises(NetTooManyCalls, match="at most 2 calls"):
        await net.fetch(net.url(), local=local)
    assert len(net.upstream.requests) == 2
    await net.fetch(net.url(), local={})                # another request starts again
    assert len(net.upstream.requests) == 3


async def test_at_most_max_concurrent_calls_of_one_request_run_at_once(net: Net) -> None:
    net.limit(NetLimits(max_concurrent=2))
    local: dict[str, Any] = {}
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await net.fetch(net.url("/block"), local=local)).value["status"])

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one)
            for _ in range(2):
                await net.upstream.arrivals[1].receive()
            await trio.testing.wait_all_tasks_blocked()
            assert net.upstream.active == 2
            assert local["net"].slots.statistics().tasks_waiting == 2
            assert net.provider.in_flight == 2
            net.upstream.release.set()
    assert statuses == [200] * 4 and len(net.upstream.requests) == 4
    assert net.upstream.peak == 2 and net.provider.in_flight == 0


async def test_the_server_wide_in_flight_cap_spans_requests(net: Net) -> None:
    net.limit(NetLimits(max_in_flight=1))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(net.fetch, net.url("/block"))    # each its own request
            await net.upstream.arrivals[1].receive()
            await trio.testing.wait_all_tasks_blocked()
            assert (net.upstream.active, net.provider.in_flight) == (1, 1)
            net.upstream.release.set()
    assert net.upstream.peak == 1 and len(net.upstream.requests) == 3


async def test_one_apps_calls_beyond_its_share_wait_while_another_apps_proceed(
        net: Net) -> None:
    net.limit(NetLimits(max_in_flight_per_app=2))
    assert NetLimits().max_in_flight_per_app == 30
    done: list[str] = []

    async def one(app: str) -> None:
        await net.fetch(net.url("/block"), app=app)     # each its own request
        done.append(app)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one, APP)
            for _ in range(2):
                await net.upstream.arrivals[1].receive()
            await trio.testing.wait_all_tasks_blocked()
            assert (net.upstream.active, net.provider.in_flight) == (2, 2)   # the third waits
            nursery.start_soon(one, OTHER)
            assert await net.upstream.arrivals[1].receive() == "/block"     # beta's goes out
            await trio.testing.wait_all_tasks_blocked()
            assert (net.upstream.active, net.provider.in_flight) == (3, 3)
            assert [r["path"] for r in net.upstream.requests] == ["/block"] * 3
            assert done == []
            net.upstream.release.set()
    assert done.count(APP) == 3 and done.count(OTHER) == 1
    assert net.upstream.peak == 3 and len(net.upstream.requests) == 4
    assert net.provider.in_flight == 0


async def test_calls_are_rate_limited_per_app_and_host(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=1.0, burst=2))
    for _ in range(2):
        await net.fetch(net.url())
    with pytest.raises(NetRateLimited, match="1 per second"):
        await net.fetch(net.url())
    assert len(net.upstream.requests) == 2
    await net.fetch(net.url(host="other.test"))         # another host: its own bucket
    await net.fetch(net.url(), app=OTHER)               # another app: its own bucket
    net.clock.now += 1.0
    await net.fetch(net.url())
    with pytest.raises(NetRateLimited):
        await net.fetch(net.url())
    assert len(net.upstream.requests) == 5
    net.provider.forget_app(APP)                        # a removed app's buckets go
    await net.fetch(net.url())
    assert len(net.upstream.requests) == 6


async def test_a_rules_rate_replaces_the_default(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=1.0, burst=1))
    port = net.upstream.port
    await net.policy.allow(f"http://good.test:{port}", rate_per_s=0)   # 0: no limit
    await net.policy.allow(f"http://other.test:{port}", rate_per_s=1, burst=3)
    for _ in range(5):
        await net.fetch(net.url())
    for _ in range(3):
        await net.fetch(net.url(host="other.test"))
    with pytest.raises(NetRateLimited, match=_re(f"calls to http://other.test:{port} are "
                                                 "limited to 1 per second (burst 3)")):
        await net.fetch(net.url(host="other.test"))
    assert len(net.upstream.requests) == 8


async def test_a_rules_bucket_spans_every_host_its_entry_matches(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=100.0, burst=100))
    port = net.upstream.port
    request = net.request(allow=[f"http://*.wild.test:{port}"])
    await net.policy.allow(f"http://*.wild.test:{port}", rate_per_s=1, burst=2)
    await net.fetch(net.url(host="a.wild.test"), request=request)
    await net.fetch(net.url(host="b.wild.test"), request=request)
    with pytest.raises(NetRateLimited, match=_re(f"calls to http://*.wild.test:{port} are")):
        await net.fetch(net.url(host="a.wild.test"), request=request)
    await net.fetch(net.url(host="a.wild.test"), request=request, app=OTHER)   # per app
    assert len(net.upstream.requests) == 3


async def test_without_a_rule_a_wildcard_entrys_hosts_share_one_bucket(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=1.0, burst=2))
    port = net.upstream.port
    request = net.request(allow=[f"http://*.wild.test:{port}", f"http://good.test:{port}"])
    await net.fetch(net.url(host="a.wild.test"), request=request)
    await net.fetch(net.url(host="b.wild.test"), request=request)
    # rotating subdomains is no way around the limit: the manifest entry's bucket is empty
    with pytest.raises(NetRateLimited, match=_re(f"calls to http://*.wild.test:{port} are "
                                                 "limited to 1 per second (burst 2)")):
        await net.fetch(net.url(host="c.wild.test"), request=request)
    with pytest.raises(NetRateLimited):
        await net.fetch(net.url(host="a.wild.test"), request=request)
    await net.fetch(net.url(), request=request)                 # another entry: its own
    await net.fetch(net.url(host="a.wild.test"), request=request, app=OTHER)   # per app
    assert [r["host"] for r in net.upstream.requests] == \
        ["a.wild.test", "b.wild.test", "good.test", "a.wild.test"]


async def test_each_redirect_hop_takes_a_token_of_its_own_rule(net: Net) -> None:
    port = net.upstream.port
    await net.policy.allow(f"http://good.test:{port}", rate_per_s=0)          # no limit
    await net.policy.allow(f"http://other.test:{port}", rate_per_s=1, burst=2)
    for _ in range(2):
        result = await net.fetch(net.url("/cross"))
        assert echoed(result)["host"] == "other.test"
    # other.test's bucket is empty: a redirect there is refused as a call there would be
    with pytest.raises(NetRateLimited, match=_re(f"calls to http://other.test:{port} are "
                                                 "limited to 1 per second (burst 2)")):
        await net.fetch(net.url("/cross"))
    with pytest.raises(NetRateLimited):
        await net.fetch(net.url(host="other.test"))
    assert [r["host"] for r in net.upstream.requests] == \
        ["good.test", "other.test", "good.test", "other.test", "good.test"]
    net.clock.now += 1.0
    await net.fetch(net.url("/cross"))
    assert net.upstream.requests[-1]["host"] == "other.test"


async def test_a_redirect_takes_a_token_of_the_hops_manifest_entry(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=1.0, burst=1))
    await net.fetch(net.url("/cross"))          # one token of each entry's bucket
    with pytest.raises(NetRateLimited, match=_re(f"calls to http://other.test:"
                                                 f"{net.upstream.port} are")):
        await net.fetch(net.url(host="other.test"))
    assert [r["host"] for r in net.upstream.requests] == ["good.test", "other.test"]


async def test_rate_limit_buckets_are_pruned_full_ones_first_then_the_oldest(
        net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net_module, "MAX_BUCKETS", 8)
    net.limit(NetLimits(rate_per_s=1.0, burst=2))
    buckets = net.provider._buckets

    def apps() -> set[str]:
        return {app for app, _ in buckets}

    for i in range(4):                          # the oldest: emptied
        for _ in range(2):
            await net.fetch(net.url(), app=f"app{i}")
    for i in range(4, 8):                       # newer: one token left
        await net.fetch(net.url(), app=f"app{i}")
    assert len(buckets) == 8
    net.clock.now += 1.5                        # app4..app7 full again, app0..app3 not
    await net.fetch(net.url(), app="app8")      # one over the limit: pruned, then app8 added
    assert len(buckets) <= 5 and "app8" in apps()
    assert not apps() & {"app4", "app5", "app6", "app7"}       # full: dropped first
    assert {"app1", "app2", "app3"} <= apps()   # not full: kept, though older
    await net.fetch(net.url(), app="app1")      # as it was (1.5 tokens), not a new one
    with pytest.raises(NetRateLimited):
        await net.fetch(net.url(), app="app1")
    # then the least recently used: a bucket used again counts as new
    for i in (9, 10):
        await net.fetch(net.url(), app=f"app{i}")
    await net.fetch(net.url(), app="app2")
    for i in (11, 12, 13):
        await net.fetch(net.url(), app=f"app{i}")
    # app12 found 8: none full, so the 4 least recently used went (app0, app3, app8, app1),
    # not app2, used again after app9 and app10
    assert len(buckets) == 6
    assert {"app2", "app9", "app13"} <= apps() and not apps() & {"app0", "app3", "app8", "app1"}
    for i in range(14, 60):
        await net.fetch(net.url(), app=f"app{i}")
        assert len(buckets) <= 8
    assert "app59" in apps()


async def test_a_cache_hit_takes_no_token(net: Net) -> None:
    net.limit(NetLimits(rate_per_s=1.0, burst=1))
    await net.policy.allow(f"http://good.test:{net.upstream.port}", cache_ttl_s=60)
    assert (await net.fetch(net.url("/echo?a=1"))).value["cached"] is False
    for _ in range(3):
        assert (await net.fetch(net.url("/echo?a=1"))).value["cached"] is True
    with pytest.raises(NetRateLimited):                 # a miss goes out: it needs a token
        await net.fetch(net.url("/echo?a=2"))
    net.clock.now += 1.0
    assert (await net.fetch(net.url("/echo?a=2"))).value["cached"] is False
    assert len(net.upstream.requests) == 2


async def test_a_rule_with_a_cache_ttl_answers_repeated_gets_from_the_cache(net: Net) -> None:
    rule = f"http://good.test:{net.upstream.port}"
    await net.policy.allow(f"HTTP://Good.test:{net.upstream.port}/", cache_ttl_s=60)
    await net.policy.allow(f"http://other.test:{net.upstream.port}")
    first = await net.fetch(net.url("/echo?a=1"))
    second = await net.fetch(net.url("/echo?a=1"))
    assert (first.value["cached"], second.value["cached"]) == (False, True)
    assert second.data == first.data and len(net.upstream.requests) == 1
    await net.fetch(net.url("/echo?a=2"))               # another URL
    await net.fetch(net.url("/echo?a=1"), app=OTHER)    # another app
    assert len(net.upstream.requests) == 3
    net.clock.now += 60
    third = await net.fetch(net.url("/echo?a=1"))
    assert third.value["cached"] is False and len(net.upstream.requests) == 4
    stats = net.provider.cache.stats()
    assert (stats["hits"], stats["misses"]) == ({rule: 1}, {rule: 4})   # by the canonical entry


@pytest.mark.parametrize(("path", "options", "ttl"), [
    ("/echo", {"method": "POST", "body": "x"}, 60),
    ("/echo", {"method": "HEAD"}, 60),
    ("/missing", {}, 60),
    ("/echo", {}, None),                    # no cache_ttl_s on the rule
    # requests with credentials: a secret, the app's own authorization or cookies
    ("/echo", {"secret": "TOKEN"}, 60),
    ("/echo", {"headers": {"Authorization": "Bearer a"}}, 60),
    ("/echo", {"headers": {"AUTHORIZATION": "Bearer a"}}, 60),
    ("/echo", {"headers": {"Cookie": "session=a"}}, 60),
    # responses that say not to, or that vary with the request's headers
    ("/nostore", {}, 60),
    ("/with?cache-control=No-Store", {}, 60),
    ("/with?cache-control=private%2C%20max-age=60", {}, 60),
    ("/with?cache-control=max-age=60%2C%20PRIVATE", {}, 60),
    ("/with?vary=Accept", {}, 60),
    ("/with?vary=Accept-Encoding%2C%20User-Agent", {}, 60),
    ("/with?vary=*", {}, 60),
    # responses setting a cookie (one user's session, handed to the next)
    ("/with?set-cookie=session%3Da", {}, 60),
    ("/with?Set-Cookie=id%3D1%3B%20Path%3D%2F&cache-control=public%2C%20max-age=60", {}, 60),
    # only a 200 is stored: not a partial answer to a Range, nor another success
    ("/status/206", {}, 60),
    ("/status/203", {}, 60),
    ("/status/201", {}, 60),
])
async def test_what_is_not_cached(net: Net, path: str, options: dict[str, Any],
                                  ttl: int | None) -> None:
    await net.policy.allow(f"http://good.test:{net.upstream.port}", cache_ttl_s=ttl)
    await net.policy.set_secret("TOKEN", SECRET, inject="bearer", app=APP)
    request = net.request(secrets=("TOKEN",))
    for _ in range(2):
        result = await net.fetch(net.url(path), options, request=request)
        assert result.value["cached"] is False
    assert len(net.upstream.requests) == 2
    assert net.provider.cache.stats()["entries"] == 0


@pytest.mark.parametrize(("path", "options"), [
    ("/echo", {}),
    ("/echo", {"headers": {"X-Other": "1", "Accept": "text/plain"}}),
    ("/with?vary=Accept-Encoding", {}),
    ("/with?vary=accept-encoding%2C%20", {}),
    ("/with?cache-control=public%2C%20max-age=60", {}),
])
async def test_what_is_cached(net: Net, path: str, options: dict[str, Any]) -> None:
    await net.policy.allow(f"http://good.test:{net.upstream.port}", cache_ttl_s=60)
    first = await net.fetch(net.url(path), options)
    second = await net.fetch(net.url(path), options)
    assert (first.value["cached"], second.value["cached"]) == (False, True)
    assert len(net.upstream.requests) == 1


async def test_requests_with_different_headers_do_not_share_an_answer(net: Net) -> None:
    await net.policy.allow(f"http://good.test:{net.upstream.port}", cache_ttl_s=60)

    async def fetch(headers: dict[str, str]) -> Binary:
        return await net.fetch(net.url("/echo?a=1"), {"headers": headers})

    one = await fetch({"X-Api-Key": "user-one"})
    two = await fetch({"X-Api-Key": "user-two"})     # another user's key: not one's answer
    assert (one.value["cached"], two.value["cached"]) == (False, False)
    assert echoed(two)["headers"]["x-api-key"] == "user-two"
    again = await fetch({"x-api-key": "user-one"})   # the same header, however spelled
    assert again.value["cached"] is True and echoed(again)["headers"]["x-api-key"] == "user-one"
    assert (await fetch({})).value["cached"] is False                   # nor without it
    assert (await fetch({"X-Api-Key": "user-one", "Accept": "text/plain"})).value["cached"] \
        is False
    assert (await fetch({"Accept": "text/plain", "X-Api-Key": "user-one"})).value["cached"] \
        is True                                     # the same headers in another order
    assert len(net.upstream.requests) == 4
    assert net.provider.cache.stats()["entries"] == 4


@pytest.mark.parametrize(("inject", "echo_header"), [
    ("bearer", "x-echo-auth"), ("header:X-Api-Key", "x-echo-key"),
    ("query:api_key", "x-echo-query")])
async def test_a_secret_is_injected_as_its_kind_says_and_scrubbed_from_the_answer(
        net: Net, inject: str, echo_header: str) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject=inject, app=APP)
    result = await net.fetch(net.url("/echo?x=1"),
                             {"secret": "TOKEN", "headers": {"Authorization": "Bearer own"}},
                             request=net.request(secrets=("TOKEN",)))
    seen = net.upstream.requests[-1]
    if inject == "bearer":              # the secret's header wins over the app's
        assert seen["headers"]["authorization"] == f"Bearer {SECRET}"
    elif inject.startswith("header"):
        assert (seen["headers"]["x-api-key"], seen["headers"]["authorization"]) == \
            (SECRET, "Bearer own")
    else:
        assert urllib.parse.parse_qs(seen["query"]) == {"x": ["1"], "api_key": [SECRET]}
    # the server echoed it back in its body and a header: the app gets neither
    assert b"[secret]" in result.data
    assert not _leaks(result.data.decode("latin-1"))
    assert "[secret]" in result.value["headers"][echo_header]
    assert not _leaks(json.dumps(result.value))
    assert result.value["url"] == net.url("/echo?x=1")


async def test_a_secret_is_only_sent_to_its_domain(net: Net) -> None:
    port = net.upstream.port
    await net.policy.set_secret("TOKEN", SECRET, inject="bearer",
                                domain=f"HTTP://Other.test:{port}/")
    request = net.request(secrets=("TOKEN",))
    with pytest.raises(NetDenied, match=_re(f"only sent to http://other.test:{port}, not "
                                            f"http://good.test:{port}")):
        await net.fetch(net.url(), {"secret": "TOKEN"}, request=request)
    assert net.egress.backend.connects == 0 and net.upstream.requests == []
    await net.fetch(net.url(host="other.test"), {"secret": "TOKEN"}, request=request)
    assert net.upstream.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(("domain", "url", "shown"), [
    # a bare host is https on 443: not the same host over http, nor on another port
    ("good.test", "http://good.test:{port}/echo", "good.test"),
    ("good.test:{port}", "http://good.test:{port}/echo", "good.test:{port}"),
    ("http://good.test", "http://good.test:{port}/echo", "http://good.test"),
    ("http://good.test:{port}", "http://good.test:{other}/echo", "http://good.test:{port}"),
    ("http://*.wild.test:{port}", "http://good.test:{port}/echo", "http://*.wild.test:{port}"),
])
async def test_a_secret_is_bound_to_its_domains_scheme_and_port(net: Net, domain: str,
                                                                url: str, shown: str) -> None:
    port, other = net.upstream.port, net.upstream.port + 1
    await net.policy.set_secret("TOKEN", SECRET, inject="bearer",
                                domain=domain.format(port=port))
    url = url.format(port=port, other=other)
    request = net.request(allow=[f"http://good.test:{port}", f"http://good.test:{other}"],
                          secrets=("TOKEN",))
    with pytest.raises(NetDenied, match=_re(f"only sent to {shown.format(port=port)}, not "
                                            f"{entry_for(parse_url(url))}")):
        await net.fetch(url, {"secret": "TOKEN"}, request=request)
    assert net.egress.backend.connects == 0 and net.upstream.requests == []
    if parse_url(url).port == port:     # the call itself is allowed, without the secret
        await net.fetch(url, request=request)
        assert "authorization" not in net.upstream.requests[-1]["headers"]


async def test_a_secret_must_be_listed_and_set(net: Net) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="bearer", app=APP)
    with pytest.raises(NetDenied, match="does not list the secret 'TOKEN'"):
        await net.fetch(net.url(), {"secret": "TOKEN"}, request=net.request(secrets=("OTHER",)))
    with pytest.raises(NetDenied, match="no secret 'UNSET' is set"):
        await net.fetch(net.url(), {"secret": "UNSET"}, request=net.request(secrets=("UNSET",)))
    await net.policy.set_secret("OWN", SECRET, inject="bearer", app=OTHER)
    with pytest.raises(NetDenied, match="no secret 'OWN'"):     # beta's, not alpha's
        await net.fetch(net.url(), {"secret": "OWN"}, request=net.request(secrets=("OWN",)))
    assert net.egress.backend.connects == 0


async def test_a_secret_a_redirect_put_in_the_path_is_not_logged(net: Net) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="query:api_key", app=APP)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.log.run)
        result = await net.fetch(net.url("/into-path"), {"secret": "TOKEN"},
                                 request=net.request(secrets=("TOKEN",)))
        nursery.cancel_scope.cancel()
    assert net.upstream.requests[-1]["path"] == f"/landed/{SECRET}"    # it went there
    [entry] = await net.log.read()
    assert entry.path == "/landed/[secret]"
    assert not _leaks(json.dumps(entry.to_json())) and not _leaks(result.value["url"])


async def test_an_unbound_secret_for_every_app_stored_earlier_is_not_used(
        net: Net, db: Database) -> None:
    """Before a secret for every app needed a domain, one could be stored without: such a row
    is refused at use, not sent wherever an app names."""
    def insert(conn: Any) -> None:
        conn.execute("INSERT INTO net_secrets (app, name, value, inject, updated_at) VALUES "
                     "(NULL, 'OLD', ?, 'bearer', '2026-01-01T00:00:00Z')", (SECRET,))

    await db.write(insert, deadline=trio.current_time() + 10)
    await net.policy.load()
    with pytest.raises(NetDenied, match="bound to no domain: store it again with --domain"):
        await net.fetch(net.url(), {"secret": "OLD"}, request=net.request(secrets=("OLD",)))
    assert net.egress.backend.connects == 0 and net.upstream.requests == []


@pytest.mark.parametrize("bound", [False, True])
@pytest.mark.parametrize("inject", ["bearer", "header:X-Api-Key", "query:api_key"])
async def test_a_secret_does_not_follow_a_redirect_to_another_origin(
        net: Net, inject: str, bound: bool) -> None:
    # the app's own secret without a domain (the origin the call names), or one for every
    # app bound to good.test's entry
    if bound:
        await net.policy.set_secret("TOKEN", SECRET, inject=inject,
                                    domain=f"http://good.test:{net.upstream.port}")
    else:
        await net.policy.set_secret("TOKEN", SECRET, inject=inject, app=APP)
    result = await net.fetch(net.url("/cross"), {"secret": "TOKEN"},
                             request=net.request(secrets=("TOKEN",)))
    first, second = net.upstream.requests
    assert (first["host"], second["host"]) == ("good.test", "other.test")
    assert _leaks(json.dumps(first))            # bound to good.test: sent there
    assert not _leaks(json.dumps(second))
    assert result.value["redirected"] is True and not _leaks(result.data.decode("latin-1"))


async def test_a_query_secret_kept_by_a_redirect_is_scrubbed_from_the_url(net: Net) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="query:api_key", app=APP)
    result = await net.fetch(net.url("/keep-query?x=1"), {"secret": "TOKEN"},
                             request=net.request(secrets=("TOKEN",)))
    assert [r["path"] for r in net.upstream.requests] == ["/keep-query", "/echo"]
    assert _leaks(net.upstream.requests[1]["query"])    # the last hop's URL held it
    assert not _leaks(result.data.decode("latin-1"))
    assert not _leaks(json.dumps(result.value))
    assert result.value["url"].startswith(net.url("/echo?x=1&api_key="))
    assert httpx.URL(result.value["url"]).params.multi_items() == \
        [("x", "1"), ("api_key", "[secret]")]


async def test_a_short_query_secret_kept_by_a_redirect_is_scrubbed_from_the_url(
        net: Net) -> None:
    short = "Zq9"                       # under SCRUB_MIN_CHARS: not cut out of bodies
    await net.policy.set_secret("TOKEN", short, inject="query:api_key", app=APP)
    result = await net.fetch(net.url("/keep-query?x=1"), {"secret": "TOKEN"},
                             request=net.request(secrets=("TOKEN",)))
    assert [r["query"] for r in net.upstream.requests] == [f"x=1&api_key={short}"] * 2
    assert result.value["url"].startswith(net.url("/echo?x=1&api_key="))
    assert short not in result.value["url"]
    assert httpx.URL(result.value["url"]).params.multi_items() == \
        [("x", "1"), ("api_key", "[secret]")]


@pytest.mark.parametrize("inject", ["query:api_key", "bearer"])
async def test_a_short_secret_in_a_redirects_query_does_not_reach_another_origin(
        net: Net, inject: str) -> None:
    short = "Zq9"
    await net.policy.set_secret("TOKEN", short, inject=inject, app=APP)
    # as a query parameter fazt added (query:), or one the app's URL held (a bearer value
    # the app learnt): either way the Location hands it to a hop it is not bound to
    url = net.url("/cross-keep-query?x=1" + ("" if inject.startswith("query") else "&k=Zq9"))
    with pytest.raises(NetDenied, match="would carry the secret 'TOKEN'"):
        await net.fetch(url, {"secret": "TOKEN"}, request=net.request(secrets=("TOKEN",)))
    assert [r["host"] for r in net.upstream.requests] == ["good.test"]
    if inject == "bearer":
        # a query parameter that merely contains a short value is not the secret: followed
        await net.fetch(net.url("/cross-keep-query?x=aZq9b"), {"secret": "TOKEN"},
                        request=net.request(secrets=("TOKEN",)))
        assert [r["host"] for r in net.upstream.requests][1:] == ["good.test", "other.test"]
        assert "authorization" not in net.upstream.requests[-1]["headers"]


async def test_a_query_secret_kept_by_a_redirect_does_not_reach_another_origin(
        net: Net) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="query:api_key", app=APP)
    with pytest.raises(NetDenied, match="would carry the secret 'TOKEN'") as caught:
        await net.fetch(net.url("/cross-keep-query?x=1"), {"secret": "TOKEN"},
                        request=net.request(secrets=("TOKEN",)))
    assert not _leaks(str(caught.value))
    [first] = net.upstream.requests             # the hop to other.test is never made
    assert first["host"] == "good.test"
    assert _leaks(first["query"])


@pytest.mark.parametrize("bound", [False, True])
@pytest.mark.parametrize("inject", ["bearer", "header:X-Api-Key", "query:api_key"])
async def test_a_secret_is_never_sent_over_http_after_https(net: Net, tls_port: int,
                                                            inject: str, bound: bool) -> None:
    if bound:       # for every app, bound to good.test over https on the TLS port
        await net.policy.set_secret("TOKEN", SECRET, inject=inject,
                                    domain=f"good.test:{tls_port}")
    else:           # the app's own, without a domain: the origin the call names
        await net.policy.set_secret("TOKEN", SECRET, inject=inject, app=APP)
    request = net.request(allow=[f"good.test:{tls_port}", f"http://good.test:{net.upstream.port}"],
                          secrets=("TOKEN",))
    result = await net.fetch(f"https://good.test:{tls_port}/downgrade", {"secret": "TOKEN"},
                             request=request)
    first, second = net.upstream.requests
    assert [(r["scheme"], r["host"], r["path"]) for r in (first, second)] == \
        [("https", "good.test", "/downgrade"), ("http", "good.test", "/echo")]
    assert _leaks(json.dumps(first))            # bound to good.test over https: sent there
    assert not _leaks(json.dumps(second))
    assert result.value["redirected"] is True
    assert echoed(result)["scheme"] == "http" and not _leaks(result.data.decode("latin-1"))


async def test_a_secret_bound_to_a_domain_follows_an_https_redirect_within_it(
        net: Net, tls_port: int) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="bearer",
                                domain=f"*.wild.test:{tls_port}")
    request = net.request(allow=[f"*.wild.test:{tls_port}"], secrets=("TOKEN",))
    result = await net.fetch(f"https://a.wild.test:{tls_port}/tls-hop", {"secret": "TOKEN"},
                             request=request)
    assert result.value["redirected"] is True
    assert [(r["scheme"], r["host"], r["headers"]["authorization"])
            for r in net.upstream.requests] == [("https", "a.wild.test", f"Bearer {SECRET}"),
                                                ("https", "b.wild.test", f"Bearer {SECRET}")]


@pytest.mark.parametrize("inject", ["bearer", "header:X-Api-Key", "query:api_key"])
async def test_a_bound_secret_does_not_follow_a_redirect_to_its_host_on_another_scheme(
        net: Net, tls_port: int, inject: str) -> None:
    port = net.upstream.port
    await net.policy.set_secret("TOKEN", SECRET, inject=inject, domain=f"http://good.test:{port}")
    request = net.request(allow=[f"http://good.test:{port}", f"good.test:{tls_port}"],
                          secrets=("TOKEN",))
    result = await net.fetch(net.url("/upgrade"), {"secret": "TOKEN"}, request=request)
    first, second = net.upstream.requests
    assert [(r["scheme"], r["host"], r["path"]) for r in (first, second)] == \
        [("http", "good.test", "/upgrade"), ("https", "good.test", "/echo")]
    assert _leaks(json.dumps(first))            # its entry: http on the test port
    assert not _leaks(json.dumps(second))       # the same host, but https on another port
    assert result.value["redirected"] is True and not _leaks(result.data.decode("latin-1"))


@pytest.mark.parametrize("value", ["tökén-value-1234", "€", "a\x7fb", "a\x85b"])
async def test_a_non_ascii_header_value_is_refused_before_sending_and_logged(
        net: Net, value: str) -> None:
    with pytest.raises(CapabilityError, match="visible ASCII") as caught:
        await net.fetch(net.url(), {"headers": {"X-A": value}})
    assert not isinstance(caught.value, NetError)       # the app's mistake, not upstream's
    assert net.egress.backend.connects == 0 and net.upstream.requests == []
    assert net.log.stats()["buffered"] == 1


async def test_a_header_value_may_hold_tabs_and_inner_spaces(net: Net) -> None:
    value = "a\tb c ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"
    seen = echoed(await net.fetch(net.url(), {"headers": {"X-A": value, "X-Empty": ""}}))
    assert (seen["headers"]["x-a"], seen["headers"]["x-empty"]) == (value, "")


@pytest.mark.parametrize(("value", "sent"), [(" a", "a"), ("a ", "a"), ("\t", ""),
                                             ("  x\ty \t", "x\ty")])
async def test_a_header_value_loses_its_leading_and_trailing_whitespace(
        net: Net, value: str, sent: str) -> None:
    # as fetch normalises header values (the HTTP library refuses them otherwise)
    seen = echoed(await net.fetch(net.url(), {"headers": {"X-A": value}}))
    assert seen["headers"]["x-a"] == sent


@pytest.mark.parametrize(("inject", "value"), [
    ("header:X-Api-Key", " leading-space-1"), ("header:X-Api-Key", "trailing-space-1 "),
    ("bearer", "trailing-space-1 ")])
async def test_a_secret_value_set_secret_accepts_can_be_sent(net: Net, inject: str,
                                                             value: str) -> None:
    try:
        await net.policy.set_secret("TOKEN", value, inject=inject, app=APP)
    except BadRequest:                  # refusing it up front is a fix too
        return
    result = await net.fetch(net.url(), {"secret": "TOKEN"},
                             request=net.request(secrets=("TOKEN",)))
    assert result.value["status"] == 200


async def test_a_send_error_does_not_show_the_secret_to_the_app(net: Net) -> None:
    value = " s3cr\\et-value-1"          # a backslash, and a leading space h11 refuses
    try:
        await net.policy.set_secret("TOKEN", value, inject="header:X-Api-Key", app=APP)
    except BadRequest:                  # refused up front: nothing can be shown
        return
    try:
        await net.fetch(net.url(), {"secret": "TOKEN"}, request=net.request(secrets=("TOKEN",)))
    except CapabilityError as exc:
        assert "s3cr" not in str(exc) and "value-1" not in str(exc)


@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
async def test_the_cache_does_not_reuse_an_answer_across_credentials(net: Net,
                                                                     header: str) -> None:
    await net.policy.allow(f"http://good.test:{net.upstream.port}", cache_ttl_s=60)
    await net.fetch(net.url(), {"headers": {header: "user-a"}})
    second = await net.fetch(net.url(), {"headers": {header: "user-b"}})
    assert echoed(second)["headers"][header.lower()] == "user-b"
    assert second.value["cached"] is False and len(net.upstream.requests) == 2
    third = await net.fetch(net.url())                  # nor is it stored for one without
    assert third.value["cached"] is False and len(net.upstream.requests) == 3


@pytest.mark.parametrize("url", [
    "https://a.example/x", "http://a.example/x", "https://a.example:8443/",
    "http://a.example:8080/", "https://Bücher.example/", "http://93.184.216.34:81/",
    "https://[2001:db8::1]/", "http://[2001:db8::1:1]:8080/",
])
async def test_a_refusal_suggests_an_entry_that_would_allow_the_url(net: Net, url: str) -> None:
    with pytest.raises(NetDenied) as caught:
        await net.fetch(url)
    found = re.search(r'add "([^"]+)" to "capabilities"', str(caught.value))
    assert found is not None
    assert found.group(1) == entry_for(parse_url(url))
    assert parse_allow_entry(found.group(1)).matches(parse_url(url))
    # the server's rules: the same entry, as a rule
    compat = NetRequest(allow=None, every_secret=True)
    with pytest.raises(NetDenied) as caught:
        await net.fetch(url, request=compat)
    found = re.search(r"\(fazt net allow (\S+) --app alpha\)", str(caught.value))
    assert found is not None
    assert parse_allow_entry(found.group(1)).matches(parse_url(url))
    assert net.egress.backend.connects == 0


@pytest.mark.parametrize("where", ["option", "manifest"])
async def test_a_timeout_shorter_than_the_budget_ends_the_call(net: Net, where: str) -> None:
    options = {"timeoutMs": 200} if where == "option" else {}
    request = net.request(timeout_ms=5000 if where == "option" else 200)
    started = trio.current_time()
    with pytest.raises(NetTimeout):
        await net.fetch(net.url("/slow"), options, request=request)
    elapsed = trio.current_time() - started
    assert 0.2 <= elapsed < 2         # the budget's net phase would allow 4 s
    assert [r["path"] for r in net.upstream.requests] == ["/slow"]


async def test_every_call_is_logged_once_without_its_query_string(net: Net) -> None:
    await net.policy.set_secret("TOKEN", SECRET, inject="query:api_key", app=APP)
    request = net.request(secrets=("TOKEN",))
    async with trio.open_nursery() as nursery:
        await nursery.start(net.log.run)
        ok = await net.fetch(net.url("/echo?q=private-words"), {"secret": "TOKEN"},
                             request=request)
        await net.fetch(net.url("/missing?page=2"), {"method": "POST", "body": "abc"},
                        request=request)
        with pytest.raises(NetDenied):
            await net.fetch("http://evil.test/x?y=private-words", request=request)
        with pytest.raises(CapabilityError):
            await net.fetch(net.url("/echo?z=1"), {"method": "TRACE"}, request=request)
        for url in ("https://evil.test:443/a", "https://evil.test:80/b", "http://evil.test:443/c",
                    "https://[2001:db8::1]:8443/d", "https://[2001:db8::1]/e"):
            with pytest.raises(NetDenied):
                await net.fetch(url, request=request)
        nursery.cancel_scope.cancel()
    entries = await net.log.read()
    port = net.upstream.port
    assert [(e.app, e.request_id, e.method, e.host, e.path, e.status, e.error)
            for e in entries] == [
        (APP, "req-1", "GET", f"http://good.test:{port}", "/echo", 200, None),
        (APP, "req-1", "POST", f"http://good.test:{port}", "/missing", 404, None),
        (APP, "req-1", "GET", "http://evil.test", "/x", None, "net_denied"),
        (APP, "req-1", "GET", "", "", None, "capability_error"),
        # where the call went, written as an allow entry: http:// when plain, the port when
        # it is not the scheme's default
        (APP, "req-1", "GET", "evil.test", "/a", None, "net_denied"),
        (APP, "req-1", "GET", "evil.test:80", "/b", None, "net_denied"),
        (APP, "req-1", "GET", "http://evil.test:443", "/c", None, "net_denied"),
        (APP, "req-1", "GET", "[2001:db8::1]:8443", "/d", None, "net_denied"),
        (APP, "req-1", "GET", "[2001:db8::1]", "/e", None, "net_denied")]
    # what came in (before the echoed secret was cut out of what the app got), and went out
    raw = orjson.dumps(net.upstream.requests[0])
    assert (entries[0].bytes_in, entries[1].bytes_out) == (len(raw), 3)
    assert len(ok.data) != len(raw) and b"[secret]" in ok.data
    assert all(e.duration_ms >= 0 and not e.cached for e in entries)
    shown = json.dumps([e.to_json() for e in entries])
    assert "private-words" not in shown and "page" not in shown and not _leaks(shown)


async def test_the_log_names_where_a_redirected_call_ended(net: Net) -> None:
    port = net.upstream.port
    async with trio.open_nursery() as nursery:
        await nursery.start(net.log.run)
        await net.fetch(net.url("/cross?q=private-words"))
        with pytest.raises(NetDenied):          # refused on the way: the call as made
            await net.fetch(net.url("/cross"),
                            request=net.request(allow=[f"http://good.test:{port}"]))
        nursery.cancel_scope.cancel()
    entries = await net.log.read()
    assert [(e.host, e.path, e.status, e.error) for e in entries] == [
        (f"http://other.test:{port}", "/echo", 200, None),
        (f"http://good.test:{port}", "/cross", None, "net_denied")]


async def test_a_redirected_answer_is_logged_at_its_destination_and_not_cached(
        net: Net) -> None:
    port = net.upstream.port
    await net.policy.allow(f"http://good.test:{port}", cache_ttl_s=60)
    await net.policy.allow(f"http://other.test:{port}")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.log.run)
        for _ in range(2):
            await net.fetch(net.url("/cross"))
        nursery.cancel_scope.cancel()
    assert [(e.host, e.path, e.cached) for e in await net.log.read()] == \
        [(f"http://other.test:{port}", "/echo", False),
         (f"http://other.test:{port}", "/echo", False)]


# == the egress client, as the provider uses it ============================================


@pytest.mark.parametrize("where", ["app", "prepare"])
async def test_a_request_httpx_cannot_build_is_a_net_error(net: Net, where: str) -> None:
    # net.py refuses such values before this; the egress client stands on its own too
    bad = [("x-a", "tökén")]
    with pytest.raises(NetError, match="the request cannot be sent"):
        await net.egress.fetch("GET", parse_url(net.url()),
                               headers=bad if where == "app" else [], body=b"",
                               deadline=trio.current_time() + 10,
                               prepare=lambda hop: (hop.url, [] if where == "app" else bad))
    assert net.upstream.requests == []
