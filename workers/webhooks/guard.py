"""Is a webhook URL safe to call from inside our network? (SSRF)

https only in production (http elsewhere), and every address the host resolves
to must be public: no loopback, private, link-local, multicast, reserved or
unspecified address, no cloud metadata endpoint. The caller connects to the
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
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
