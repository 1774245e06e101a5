"""The address and host rules that keep ingest out of private networks."""

import pytest

from media_store.fetch import address_is_public, host_allowed


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
        "::",
    ],
)
def test_private_loopback_link_local_and_wrapped_addresses_are_not_public(address):
    """Loopback, RFC 1918, link-local, CGNAT and IPv4 hidden inside IPv6 are all refused."""
    assert address_is_public(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_global_addresses_are_public(address):
    """Ordinary internet addresses pass."""
    assert address_is_public(address) is True


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("replicate.delivery", True),
        ("pbxt.replicate.delivery", True),
        ("evilreplicate.delivery", False),
        ("replicate.delivery.evil.test", False),
        ("cdn.example.com", False),
    ],
)
def test_allow_list_matches_exact_hosts_and_dot_prefixed_suffixes(host, allowed):
    """``.replicate.delivery`` allows its subdomains only; exact entries allow only themselves."""
    assert host_allowed(host, ["replicate.delivery", ".replicate.delivery"]) is allowed
