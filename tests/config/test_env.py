import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_config, env_bool, env_choice, env_int, env_list, env_str


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
