"""Which webhook URLs a worker may call (SSRF), with the DNS answer under test control,
and the Standard Webhooks signature a receiver checks."""

import base64
import dataclasses
import re
import socket
from ipaddress import IPv4Address, IPv6Address

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from workers.webhooks import guard, signing
from workers.webhooks.delivery import RETRY_SCHEDULE, WEBHOOK

PUBLIC = "93.184.216.34"
PUBLIC_SERVER = "65.54.227.120"  # a Teredo server's address


def resolver(*addresses: str):
    """A getaddrinfo that answers with these addresses for any host."""

    def resolve(host, port, type=0, **_):
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, type, 6, "", (address, port))
            for address in addresses
        ]

    return resolve


def unresolvable(host, port, type=0, **_):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def strict(settings):
    return dataclasses.replace(settings, webhook_allowed_hosts=())


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "the cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 - an address to refuse, not to bind
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
        ("::1", "a loopback address"),
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "the cloud metadata address"),
        ("fc00::5", "a private address"),
        ("fec0::1", "a site-local address"),  # deprecated, still routed inside some networks
        ("feff::1", "a site-local address"),
    ],
)
def test_a_host_resolving_to_a_non_public_address_is_refused(strict, address, kind):
    with pytest.raises(guard.UnsafeUrl) as refused:
        guard.check("https://hooks.example.com/x", strict, resolve=resolver(address))
    assert str(refused.value) == f"webhook_url resolves to {kind} ({address}); use a public https URL"


# IPv6 forms that carry an IPv4 address, built from it.
def mapped(ipv4: str) -> str:
    return f"::ffff:{ipv4}"


def nat64(ipv4: str) -> str:
    return f"64:ff9b::{ipv4}"


def local_nat64(ipv4: str) -> str:
    return f"64:ff9b:1::{ipv4}"


def six_to_four(ipv4: str) -> str:
    return str(IPv6Address((0x2002 << 112) | (int(IPv4Address(ipv4)) << 80) | 1))


def teredo(client: str, server: str = PUBLIC_SERVER) -> str:
    # 2001:0:<server>:<flags>:<port ^ 0xffff>:<client ^ 0xffffffff>
    return str(
        IPv6Address(
            (0x2001 << 112)
            | (int(IPv4Address(server)) << 64)
            | (0xFFFF ^ 3544) << 32
            | (int(IPv4Address(client)) ^ 0xFFFFFFFF)
        )
    )


def compatible(ipv4: str) -> str:
    return f"::{ipv4}"


FORMS = {
    "an IPv4-mapped address": mapped,
    "a NAT64 address": nat64,
    "a 6to4 address": six_to_four,
    "a Teredo address": teredo,
    "an IPv4-compatible address": compatible,
}
INSIDE = [
    ("10.0.0.5", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("169.254.169.254", "the cloud metadata address"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("ipv4", "kind"), INSIDE)
def test_an_ipv6_form_carrying_a_non_public_ipv4_address_is_refused_naming_it(strict, form, ipv4, kind):
    address = FORMS[form](ipv4)
    assert guard.refusal(IPv6Address(address)) == f"{kind} ({ipv4}) inside {form}"
    with pytest.raises(guard.UnsafeUrl, match=re.escape(f"{kind} ({ipv4}) inside {form} ({address})")):
        guard.check("https://hooks.example.com/x", strict, resolve=resolver(address))


def test_a_teredo_address_is_refused_for_its_server_as_for_its_client(strict):
    address = teredo(client=PUBLIC, server="10.0.0.9")
    assert guard.refusal(IPv6Address(address)) == "a private address (10.0.0.9) inside a Teredo address"


@pytest.mark.parametrize(("ipv4", "kind"), [*INSIDE, (PUBLIC, "public")])
def test_a_local_use_nat64_address_is_refused_whatever_it_carries(strict, ipv4, kind):
    """Its network picks the prefix length, so where the IPv4 address sits is unknown."""
    address = local_nat64(ipv4)
    with pytest.raises(
        guard.UnsafeUrl, match=re.escape(f"resolves to a local-use NAT64 address ({address})")
    ):
        guard.check("https://hooks.example.com/x", strict, resolve=resolver(address))


@pytest.mark.parametrize("form", ["an IPv4-mapped address", "a NAT64 address"])
def test_mapped_and_nat64_forms_of_a_public_ipv4_address_are_called(strict, form):
    """An IPv4-mapped address is the IPv4 address itself to a dual-stack socket; NAT64 is how a
    network with DNS64 reaches IPv4-only hosts, and refusing it would refuse every one of them."""
    address = FORMS[form](PUBLIC)
    assert guard.check("https://hooks.example.com/x", strict, resolve=resolver(address)).addresses == (
        address,
    )


@pytest.mark.parametrize("form", ["a 6to4 address", "a Teredo address", "an IPv4-compatible address"])
def test_deprecated_and_relayed_forms_are_refused_even_around_a_public_ipv4_address(strict, form):
    address = FORMS[form](PUBLIC)
    with pytest.raises(guard.UnsafeUrl, match=re.escape(f"resolves to {form} ({address})")):
        guard.check("https://hooks.example.com/x", strict, resolve=resolver(address))


def test_one_private_address_among_public_ones_is_enough_to_refuse(strict):
    with pytest.raises(guard.UnsafeUrl, match=r"private address \(10\.1\.2\.3\)"):
        guard.check("https://hooks.example.com/x", strict, resolve=resolver(PUBLIC, "10.1.2.3"))


def test_a_public_url_gives_the_checked_addresses_to_connect_to(strict):
    target = guard.check("https://Hooks.Example.com/in?a=1", strict, resolve=resolver(PUBLIC))
    assert target.addresses == (PUBLIC,) and target.port == 443
    assert target.path == "/in?a=1" and target.host_header == "hooks.example.com"
    ipv6 = guard.check("http://[2606:4700::1]:8080", strict, resolve=resolver("2606:4700::1"))
    assert ipv6.host_header == "[2606:4700::1]:8080" and ipv6.path == "/"


def test_the_real_resolver_refuses_localhost_and_literal_private_addresses(strict):
    for url in ("http://localhost:8000/hook", "http://127.0.0.1/hook", "http://[::1]/", "http://10.0.0.1/"):
        with pytest.raises(guard.UnsafeUrl, match="resolves to"):
            guard.check(url, strict)


def test_allowed_hosts_skip_the_address_check(settings):
    allowed = dataclasses.replace(settings, webhook_allowed_hosts=("hooks.internal",))
    target = guard.check("http://hooks.internal:9000/x", allowed, resolve=resolver("10.0.0.7"))
    assert target.addresses == ("10.0.0.7",)
    with pytest.raises(guard.UnsafeUrl):
        guard.check("http://other.internal/x", allowed, resolve=resolver("10.0.0.7"))


def test_http_is_refused_in_production_only(strict):
    production = dataclasses.replace(strict, env="production")
    with pytest.raises(guard.UnsafeUrl, match="must use https"):
        guard.check("http://hooks.example.com/x", production, resolve=resolver(PUBLIC))
    assert guard.check("https://hooks.example.com/x", production, resolve=resolver(PUBLIC))
    assert guard.check("http://hooks.example.com/x", strict, resolve=resolver(PUBLIC))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/x", "must be an http or https URL"),
        ("https://user:pw@hooks.example.com/x", "must not contain credentials"),
        ("https:///x", "has no host"),
        ("https://hooks.example.com:99999/x", "not a valid URL"),
    ],
)
def test_malformed_urls_are_refused(strict, url, message):
    with pytest.raises(guard.UnsafeUrl, match=message):
        guard.check(url, strict, resolve=resolver(PUBLIC))


def test_a_host_that_does_not_resolve_is_unresolvable_not_unsafe(strict):
    with pytest.raises(guard.Unresolvable, match="could not be resolved"):
        guard.check("https://no-such-host.example/x", strict, resolve=unresolvable)


# ---------------------------------------------------------------- signing


def test_a_new_secret_is_32_random_bytes_in_the_standard_format():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_the_signed_headers_verify_with_the_secret_and_only_with_it():
    secret, body = signing.new_secret(), '{"type":"job.succeeded"}'
    headers = signing.signed_headers(secret, message_id="msg_1", body=body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-signature"].startswith("v1,")
    assert headers["user-agent"] == "Conveyor-Webhooks/1" and headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("succeeded", "failed"), headers)


def test_the_retry_schedule_backs_off_with_jitter_and_is_capped():
    for attempt, base in enumerate(RETRY_SCHEDULE, start=1):
        assert base * 0.8 <= WEBHOOK.retries.delay(attempt) <= base * 1.2
    assert WEBHOOK.retries.delay(50) <= RETRY_SCHEDULE[-1] * 1.2
    assert len({WEBHOOK.retries.delay(3) for _ in range(20)}) > 1
