"""Is a webhook URL safe to call from inside our network? (SSRF)

https only in production (http elsewhere), and every address the host resolves
to must be public: no loopback, private, link-local, site-local, multicast, reserved
or unspecified address, no cloud metadata endpoint, and no IPv6 form that carries
such an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo, IPv4-compatible). The caller connects to the
addresses checked here, not to a second lookup, so a DNS answer that changes
between the check and the request (rebinding) cannot point it inside.
Hosts in WEBHOOK_ALLOWED_HOSTS skip the address check (local receivers in tests).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from settings import Settings

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
# IPv6 forms that carry an IPv4 address, without a property of their own in ipaddress.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}
HINT = "use a public https URL"

Resolve = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's signature


class UnsafeUrl(ValueError):
    """The URL must not be called, now or later."""


class Unresolvable(UnsafeUrl):
    """The host has no address right now; at delivery time this is worth a retry."""


@dataclass(frozen=True)
class Target:
    """Where to send: the checked addresses, and what the request must say it is for."""

    scheme: str
    host: str  # for the Host header, TLS SNI and certificate checks
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def check(url: str, settings: Settings, *, resolve: Resolve = socket.getaddrinfo) -> Target:
    """The URL's target, or UnsafeUrl saying why it is refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("webhook_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl("webhook_url must be an http or https URL")
    if scheme == "http" and settings.is_production:
        raise UnsafeUrl("webhook_url must use https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("webhook_url must not contain credentials; check the signature instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("webhook_url has no host")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl("webhook_url's host is not a valid host name") from None
    port = port or DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"

    addresses = _resolve(host, port, resolve)
    if host.lower() not in settings.webhook_allowed_hosts:
        for address in addresses:
            problem = refusal(ipaddress.ip_address(address))
            if problem:
                raise UnsafeUrl(f"webhook_url resolves to {problem} ({address}); {HINT}")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


def refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        wrapped = _wrapped_ipv4(address)
        if wrapped is not None:
            form, carried, judged_by_carried = wrapped
            for ipv4 in carried:
                problem = refusal(ipv4)
                if problem:
                    return f"{problem} ({ipv4}) inside {form}"
            return None if judged_by_carried else form
        if address.is_site_local:  # deprecated (RFC 3879) yet routed inside some networks
            return "a site-local address"
    if address in METADATA:
        return "the cloud metadata address"
    for kind, found in (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if found:
            return kind
    if not address.is_global:  # shared (carrier-grade NAT), documentation, and the like
        return "a non-public address"
    return None


def _wrapped_ipv4(
    address: ipaddress.IPv6Address,
) -> tuple[str, tuple[ipaddress.IPv4Address, ...], bool] | None:
    """The IPv4 addresses an IPv6 transition form carries: (the form's name, them, whether
    they alone decide), or None for a plain IPv6 address.

    Two forms are judged by the IPv4 address they carry. An IPv4-mapped address is that
    IPv4 address to a dual-stack socket. A well-known NAT64 address (RFC 6052) is how a
    network with DNS64 gives its IPv6-only hosts the IPv4-only ones: refusing those that
    carry a public address would refuse every IPv4-only receiver there, and the translator
    delivers those that carry a private one inside its own network.
    The other forms are refused whatever they carry (naming the carried address when it is
    not public): 6to4 (its relays deprecated by RFC 7526, not globally reachable in IANA's
    registry), Teredo (server and client), IPv4-compatible (deprecated by RFC 4291) and
    local-use NAT64 (RFC 8215, where the network picks the prefix length, and so where the
    IPv4 address sits). No receiver needs them, and each reaches its IPv4 address through
    relays or translators nobody here chose.
    """
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address", (address.ipv4_mapped,), True
    if address in NAT64:
        return "a NAT64 address", (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),), True
    if address.sixtofour is not None:
        return "a 6to4 address", (address.sixtofour,), False
    if address.teredo is not None:
        return "a Teredo address", address.teredo, False
    if address in IPV4_COMPATIBLE and int(address) > 1:  # not :: (unspecified) or ::1 (loopback)
        return "an IPv4-compatible address", (ipaddress.IPv4Address(int(address)),), False
    if address in LOCAL_NAT64:
        return "a local-use NAT64 address", (), False
    return None


def _resolve(host: str, port: int, resolve: Resolve) -> tuple[str, ...]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolvable(f"webhook_url's host {host} could not be resolved") from None
    addresses: list[str] = []
    for family, *_, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise Unresolvable(f"webhook_url's host {host} has no address")
    return tuple(addresses)
