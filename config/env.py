"""Typed readers for settings that come from the environment.

Each helper names the variable in its error, so a missing or malformed setting fails at
start-up with one line a newcomer can act on.
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UNSET = object()


def env_str(name: str, default: str | object = _UNSET) -> str:
    """Return the variable, or the default; raise naming the variable when it is required."""
    value = os.environ.get(name) or None  # an empty line in .env means "not set"
    if value is None:
        file_path = os.environ.get(f"{name}_FILE")
        if file_path:
            return Path(file_path).read_text().strip()
        if default is _UNSET:
            raise ImproperlyConfigured(f"{name} is not set (see .env.example).")
        return default  # type: ignore[return-value]
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return a boolean; refuse anything that is not an obvious yes or no."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return an integer, refusing text and values below ``minimum``."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated list with blanks dropped."""
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """Return one of ``choices``; an empty ``default`` makes the variable required."""
    value = (os.environ.get(name, "").strip() or default).lower()
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set: one of {', '.join(choices)} (see .env.example)."
        )
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Return a comma-separated list of CIDRs (a bare address is a one-address network)."""
    try:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in env_list(name, [])]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from error


def database_role_urls(*, production: bool, admin_url: str, name: str) -> tuple[str, str]:
    """Return the runtime and owner role URLs (DATABASE_URL, DATABASE_OWNER_URL).

    Outside production, with only the admin URL set (the embedded server, a fresh CI database),
    both derive from it. Production never derives: web, worker and beat connect with the runtime
    role's own URL, and the admin URL must stay out of their environment.
    """
    runtime_url = env_str("DATABASE_URL", "")
    owner_url = env_str("DATABASE_OWNER_URL", "")
    if runtime_url:
        return runtime_url, owner_url
    if production:
        raise ImproperlyConfigured("DATABASE_URL is not set (the runtime role; see .env.example).")
    if not admin_url:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set: run through `make dev` or `make test`, or set DATABASE_URL "
            "and DATABASE_OWNER_URL (see .env.example)."
        )
    prefix = env_str("DATABASE_ROLE_PREFIX", name)
    runtime_url = with_credentials(
        admin_url,
        user=f"{prefix}_app",
        password=env_str("DATABASE_APP_PASSWORD", ""),
        dbname=name,
    )
    owner_url = owner_url or with_credentials(
        admin_url,
        user=f"{prefix}_owner",
        password=env_str("DATABASE_OWNER_PASSWORD", ""),
        dbname=name,
    )
    return runtime_url, owner_url


def database_config(url: str, *, variable: str) -> dict:
    """Turn a ``postgresql://`` URL into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ImproperlyConfigured(
            f"{variable} must look like postgresql://user:password@host:5432/dbname."
        )
    options = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        options[key] = unquote(value)
    host = options.pop("host", parts.hostname or "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


def with_credentials(url: str, *, user: str, password: str, dbname: str) -> str:
    """Return ``url`` pointing at ``dbname`` as ``user`` (role URLs derive from the admin URL)."""
    parts = urlsplit(url)
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    netloc = f"{auth}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(dbname), parts.query, ""))
