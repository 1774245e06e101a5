import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    database_config,
    database_role_urls,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_networks,
    env_str,
)


def test_empty_values_mean_unset(monkeypatch):
    for name in ("S", "B", "I", "L", "C"):
        monkeypatch.setenv(name, "")
    assert env_str("S", "fallback") == "fallback"
    assert env_bool("B", True) is True
    assert env_int("I", 7) == 7
    assert env_list("L", ["x"]) == ["x"]
    assert env_choice("C", ("a", "b"), "b") == "b"


def test_required_setting_names_the_variable(monkeypatch):
    monkeypatch.delenv("NEEDED", raising=False)
    with pytest.raises(ImproperlyConfigured, match="NEEDED is not set"):
        env_str("NEEDED")


def test_secret_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env_str("TOKEN") == "from-a-file"


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (lambda: env_bool("X", False), "maybe", "X must be true or false"),
        (lambda: env_int("X", 1), "ten", "X must be a whole number"),
        (lambda: env_int("X", 1, minimum=5), "2", "X must be at least 5"),
        (lambda: env_choice("X", ("a", "b"), "a"), "c", "X must be one of a, b"),
    ],
)
def test_malformed_values_are_refused_naming_the_variable(monkeypatch, reader, value, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


def test_database_url_must_name_a_database():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must look like"):
        database_config("mysql://x@y/z", variable="DATABASE_URL")
    config = database_config("postgresql://u:p%40ss@db:6543/app?sslmode=require", variable="X")
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == (
        "u",
        "p@ss",
        "db",
        "6543",
    )
    assert config["OPTIONS"] == {"sslmode": "require"}


ROLE_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "DATABASE_ROLE_PREFIX",
    "DATABASE_APP_PASSWORD",
    "DATABASE_OWNER_PASSWORD",
)


def test_role_urls_derive_from_the_admin_url_outside_production(monkeypatch):
    for name in ROLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_APP_PASSWORD", "a p")
    admin = "postgresql://postgres@127.0.0.1:5433/postgres"
    runtime, owner = database_role_urls(production=False, admin_url=admin, name="shop")
    assert runtime == "postgresql://shop_app:a%20p@127.0.0.1:5433/shop"
    assert owner == "postgresql://shop_owner@127.0.0.1:5433/shop"


def test_production_never_derives_role_urls(monkeypatch):
    for name in ROLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    admin = "postgresql://postgres@127.0.0.1:5433/postgres"
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL is not set"):
        database_role_urls(production=True, admin_url=admin, name="shop")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/shop")
    assert database_role_urls(production=True, admin_url=admin, name="shop") == (
        "postgresql://app@db/shop",
        "",
    )


def test_networks_are_read_as_cidrs_and_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("NETS", "10.0.0.0/8, 192.168.1.7")
    assert [str(n) for n in env_networks("NETS")] == ["10.0.0.0/8", "192.168.1.7/32"]
    monkeypatch.setenv("NETS", "10.0.0.0/33")
    with pytest.raises(ImproperlyConfigured, match="NETS"):
        env_networks("NETS")
