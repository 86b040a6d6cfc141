"""Which IP addresses an outbound fetch may connect to: the public Internet only.

``blocked_reason(address)`` names why an address is refused, or returns None. It is checked on
every address a host resolves to, and on the address actually dialled, so that no encoding of a
host (a decimal or octal IPv4, an IPv4-mapped IPv6, a NAT64 prefix ...) reaches the machine, its
network or a cloud's metadata service.

Python's ``is_global`` covers the IANA special-purpose registries (loopback, private, link-local,
shared address space 100.64/10, benchmarking 198.18/15, documentation, 0/8, ULA fc00::/7 ...).
On top of it: multicast (global in the registry, never a web server), and every IPv6 form that
carries an IPv4 address inside (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), whatever that
address is: a translator would forward to it, and no web API needs them.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_AWS_METADATA_V6 = ipaddress.IPv6Network("fd00:ec2::/32")    # inside fc00::/7, named for logs
# Named here rather than left to ``is_global``, whose tables change between Python versions
# (3.11 counts most of 192.0.0.0/24 as global).
_NAMED_V4 = (
    (ipaddress.IPv4Network("100.64.0.0/10"), "a carrier-grade NAT address"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "an IETF protocol assignment address"),
    (ipaddress.IPv4Network("198.18.0.0/15"), "a benchmarking address"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "a reserved address"),
)


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be connected to, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        form = _ipv4_carrier(address)
        if form is not None:
            return form
        if address.scope_id:
            return "a scoped IPv6 address"
        if address in _AWS_METADATA_V6:
            return "a cloud metadata address"
        if address.is_site_local:       # fec0::/10: deprecated, still routed on old networks
            return "a site-local address"
    else:
        for network, name in _NAMED_V4:
            if address in network:
                return name
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def _ipv4_carrier(address: ipaddress.IPv6Address) -> str | None:
    """What kind of IPv4-carrying IPv6 address this is (naming the IPv4 inside), or None."""
    if address.ipv4_mapped is not None:
        return f"an IPv4-mapped address ({address.ipv4_mapped})"
    if address in _TEREDO:
        return "a Teredo address"
    if address.sixtofour is not None:
        return f"a 6to4 address ({address.sixtofour})"
    for prefix in _NAT64:
        if address in prefix:
            return f"a NAT64 address ({ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)})"
    if address in _IPV4_COMPATIBLE and int(address) > 1:     # :: and ::1 are judged below
        return f"an IPv4-compatible address ({ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)})"
    return None
