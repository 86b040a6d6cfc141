"""The address and URL verdicts of the SSRF guard, as tables (reliability plan T24, T25)."""

from __future__ import annotations

import ipaddress

import pytest

from fazt.egress import GuardedBackend, StaticResolver, blocked_reason, parse_url
from fazt.errors import NetBadUrl, NetBlockedAddress, NetError

BLOCKED = [
    "0.0.0.0", "0.1.2.3", "10.0.0.5", "100.64.0.1", "100.127.255.254", "127.0.0.1",
    "127.255.255.254", "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.0.0.8",
    "192.0.0.170", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.51.100.7", "203.0.113.9",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:169.254.169.254",
    "::ffff:8.8.8.8", "::127.0.0.1", "64:ff9b::a00:1", "64:ff9b::808:808", "64:ff9b:1::1",
    "2002:a00:1::1", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1",
    "fc00::1", "fd00:ec2::254", "fec0::1", "fec0:0:0:ffff::1", "fe80::1", "fe80::1%2",
    "ff02::1", "100::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "140.82.112.3", "2606:4700:4700::1111",
          "2001:4860:4860::8888", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "http://2130706433/", "http://0x7f.1/", "http://0x7f000001/", "http://0177.0.0.1/",
    "http://127.1/", "http://1.2.3.4.5/", "http://01.02.03.04/", "file:///etc/passwd",
    "gopher://example.com/", "ftp://example.com/", "javascript:alert(1)", "//example.com/",
    "https://user:pass@example.com/", "https://user@example.com/", "https://exa%6dple.com/",
    "https://a..b/", "https://-x.example/", "https://example.com:0/",
    "https://example.com:65536/", "https://example.com/a b", "https://example.com/\r\nX: 1",
    "http://[fe80::1%25eth0]/", "https:///path", "", "h" * 9000,
])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(NetBadUrl):
        parse_url(url)


@pytest.mark.parametrize(("url", "host", "port", "path"), [
    ("https://API.GitHub.com./repos/x?token=1#frag", "api.github.com", 443, "/repos/x"),
    ("http://example.com", "example.com", 80, "/"),
    ("https://bücher.example/p", "xn--bcher-kva.example", 443, "/p"),
    ("https://[2606:4700:4700::1111]:8443/", "2606:4700:4700::1111", 8443, "/"),
    ("https://localhost./", "localhost", 443, "/"),
])
def test_urls_are_normalised(url: str, host: str, port: int, path: str) -> None:
    target = parse_url(url)
    assert (target.host, target.port, target.path) == (host, port, path)
    assert target.url.fragment == ""


async def test_any_forbidden_answer_blocks_the_host() -> None:
    backend = GuardedBackend(StaticResolver({
        "mixed.test": ["93.184.216.34", "127.0.0.1"],
        "rebind.test": ["10.1.2.3"], "public.test": ["93.184.216.34", "2606:4700::1"]}))
    with pytest.raises(NetBlockedAddress, match=r"resolves to a loopback address") as caught:
        await backend.vet("mixed.test", 443)
    # the address a name resolves to is not shown (an app would map a network with it)
    assert "127.0.0.1" not in str(caught.value)
    with pytest.raises(NetBlockedAddress, match="private") as caught:
        await backend.vet("rebind.test", 443)
    assert "10.1.2.3" not in str(caught.value)
    with pytest.raises(NetBlockedAddress):
        await backend.vet("169.254.169.254", 80)
    with pytest.raises(NetError, match="could not resolve"):
        await backend.vet("unknown.test", 443)
    assert [str(a) for a in await backend.vet("public.test", 443)] == \
        ["93.184.216.34", "2606:4700::1"]
    assert backend.connects == 0


async def test_a_refused_host_is_never_dialled() -> None:
    backend = GuardedBackend(StaticResolver({"meta.test": ["169.254.169.254"]}))
    with pytest.raises(NetBlockedAddress):
        await backend.connect_tcp("meta.test", 80)
    with pytest.raises(NetBlockedAddress):
        await backend.connect_unix_socket("/run/docker.sock")
    assert backend.connects == 0
