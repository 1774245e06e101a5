"""The client address behind proxies: X-Forwarded-For is believed only through trusted hops."""

import ipaddress

import pytest
from django.test import Client, RequestFactory

from config.ratelimit import client_ip


def request(remote: str, forwarded: str | None = None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


def networks(*cidrs: str) -> list:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.fixture(autouse=True)
def _no_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.TRUSTED_PROXY_NETWORKS = []


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_ip(request("198.51.100.7", "1.2.3.4")) == "198.51.100.7"


def test_a_count_takes_the_address_the_outermost_trusted_proxy_saw(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The client forged the first entry; the proxy appended what it saw.
    assert client_ip(request("10.0.0.2", "6.6.6.6, 203.0.113.9")) == "203.0.113.9"
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request("10.0.0.3", "6.6.6.6, 203.0.113.9, 10.0.0.2")) == "203.0.113.9"


def test_a_header_shorter_than_the_count_or_garbled_falls_back_to_remote_addr(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request("10.0.0.2", "203.0.113.9")) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request("10.0.0.2", "not-an-address")) == "10.0.0.2"
    assert client_ip(request("10.0.0.2")) == "10.0.0.2"


def test_cidrs_walk_past_trusted_hops_only(settings):
    settings.TRUSTED_PROXY_NETWORKS = networks("10.0.0.0/8")
    assert client_ip(request("10.0.0.2", "6.6.6.6, 203.0.113.9, 10.1.2.3")) == "203.0.113.9"
    # A request that did not come through a trusted proxy: its header means nothing.
    assert client_ip(request("198.51.100.7", "203.0.113.9")) == "198.51.100.7"
    # IPv6 clients too.
    assert client_ip(request("10.0.0.2", "2001:db8::1")) == "2001:db8::1"


@pytest.mark.django_db
def test_allauth_login_limits_count_per_client_not_per_proxy(settings, user_factory):
    """Two clients behind one proxy: one exhausting its sign-in attempts leaves the other free."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ACCOUNT_RATE_LIMITS = {"login": "2/m/ip"}
    member = user_factory()

    def attempt(address: str) -> int:
        return (
            Client()
            .post(
                "/accounts/login/",
                {"login": member.email, "password": "wrong"},
                REMOTE_ADDR="10.0.0.2",
                HTTP_X_FORWARDED_FOR=address,
            )
            .status_code
        )

    assert [attempt("203.0.113.9") for _ in range(3)] == [200, 200, 429]
    assert attempt("198.51.100.7") == 200
