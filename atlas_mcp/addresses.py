"""Which IP addresses are on the public internet: the one test every outbound URL's host must pass; and a URL's
origin, the unit the key, the CSP and the allowed hosts are bound to.

``ipaddress``'s ``is_global`` counts some internal ranges as global: the NAT64 prefixes (64:ff9b::/96 and
64:ff9b:1::/48), deprecated site-local fec0::/10 and IPv4-compatible ::a.b.c.d addresses all reach private
networks or this machine. Addresses that embed an IPv4 address (mapped ::ffff:a.b.c.d, 6to4 2002::/16) count
as that address.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "is_public_address", "origin_of"]

_INTERNAL_V6 = tuple(
    ipaddress.IPv6Network(network) for network in ("64:ff9b::/96", "64:ff9b:1::/48", "fec0::/10", "::/96")
)


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as written in it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_loopback_host(host: str) -> bool:
    """Whether a URL's host is this machine: ``localhost`` or a loopback address (where only an emulator runs)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IPv4 or IPv6 literal, a zone id allowed) is a public unicast address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _INTERNAL_V6):
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast
