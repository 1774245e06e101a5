"""Every URL the resolver knows, visited as anonymous, as another user and as the owner.

The routes come from the resolver, not from a hand-kept list: a pattern added without an entry in
``ROUTES`` (or under the admin prefix) fails ``test_every_url_pattern_is_classified``, so nobody
ships a page whose access rule was never decided. Each visit also checks the security headers
(CSP without inline scripts, nosniff, referrer policy, no framing), and a POST without a CSRF
token is refused everywhere except the two signed webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from tests.security.conftest import World, csrf_client

pytestmark = pytest.mark.django_db(transaction=True)
LOGIN = "/accounts/login/"


@dataclass(frozen=True)
class Route:
    """How one URL pattern must answer GET for each role, and how to build a concrete URL.

    ``anon``/``other``/``owner`` are expected statuses (``other`` is Bob holding Alice's ids).
    ``post`` is the owner's answer to a POST that carries a valid CSRF token, when the route
    changes state; ``csrf`` False marks the signed webhooks, the only CSRF-exempt routes.
    """

    url: Callable[[World], str]
    anon: int | tuple[int, ...]
    other: int | tuple[int, ...]
    owner: int | tuple[int, ...]
    post: int | tuple[int, ...] | None = None
    csrf: bool = True
    notes: str = ""
    extra: dict = field(default_factory=dict)


def fixed(path: str) -> Callable[[World], str]:
    return lambda world: path


def login_page(path: str, **kw) -> Route:
    """A page any signed-in user may see (their own data only); anonymous goes to sign-in."""
    return Route(fixed(path), anon=302, other=200, owner=200, **kw)


def post_only(url: Callable[[World], str], *, other: int = 405, post=(302, 303)) -> Route:
    """A state-changing action: GET is 405 once signed in, anonymous goes to sign-in."""
    return Route(url, anon=302, other=other, owner=405, post=post)


ROUTES: dict[str, Route] = {
    "": Route(fixed("/"), anon=200, other=200, owner=200),
    "healthz": Route(fixed("/healthz"), anon=200, other=200, owner=200),
    "livez": Route(fixed("/livez"), anon=200, other=200, owner=200),
    # allauth: sign-in pages are public; account pages need a session.
    "accounts/login/": Route(fixed(LOGIN), anon=200, other=302, owner=302),
    "accounts/logout/": Route(fixed("/accounts/logout/"), anon=302, other=200, owner=200),
    "accounts/inactive/": Route(fixed("/accounts/inactive/"), anon=200, other=200, owner=200),
    "accounts/signup/": Route(fixed("/accounts/signup/"), anon=200, other=302, owner=302),
    "accounts/reauthenticate/": login_page("/accounts/reauthenticate/"),
    "accounts/email/": login_page("/accounts/email/"),
    "accounts/confirm-email/": Route(
        fixed("/accounts/confirm-email/"), anon=200, other=200, owner=200
    ),
    "accounts/password/change/": login_page("/accounts/password/change/"),
    # Every persona has a password, so "set" sends them to "change".
    "accounts/password/set/": Route(
        fixed("/accounts/password/set/"), anon=302, other=302, owner=302
    ),
    "accounts/password/reset/": Route(
        fixed("/accounts/password/reset/"), anon=200, other=200, owner=200
    ),
    "accounts/login/code/confirm/": Route(
        fixed("/accounts/login/code/confirm/"), anon=302, other=302, owner=302
    ),
    "accounts/^confirm-email/(?P<key>[-:\\w]+)/$": Route(
        fixed("/accounts/confirm-email/not-a-real-key/"), anon=200, other=200, owner=200
    ),
    "accounts/password/reset/key/done/": Route(
        fixed("/accounts/password/reset/key/done/"), anon=200, other=200, owner=200
    ),
    "accounts/^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$": Route(
        fixed("/accounts/password/reset/key/1-not-a-key/"), anon=200, other=200, owner=200
    ),
    "accounts/password/reset/done/": Route(
        fixed("/accounts/password/reset/done/"), anon=200, other=200, owner=200
    ),
    # Two-factor sign-in (allauth.mfa): settings pages need a session. Turning it on asks to
    # re-enter the password first (302); pages about codes a user has not set up are 404; the
    # code step of a sign-in in progress sends anyone without one back.
    "accounts/2fa/": login_page("/accounts/2fa/"),
    "accounts/2fa/authenticate/": Route(
        fixed("/accounts/2fa/authenticate/"), anon=302, other=302, owner=302
    ),
    "accounts/2fa/reauthenticate/": Route(
        fixed("/accounts/2fa/reauthenticate/"), anon=302, other=302, owner=302
    ),
    "accounts/2fa/totp/activate/": Route(
        fixed("/accounts/2fa/totp/activate/"), anon=302, other=302, owner=302
    ),
    "accounts/2fa/totp/deactivate/": Route(
        fixed("/accounts/2fa/totp/deactivate/"), anon=302, other=404, owner=404
    ),
    "accounts/2fa/recovery-codes/": Route(
        fixed("/accounts/2fa/recovery-codes/"), anon=302, other=404, owner=404
    ),
    "accounts/2fa/recovery-codes/generate/": Route(
        fixed("/accounts/2fa/recovery-codes/generate/"), anon=302, other=302, owner=302
    ),
    "accounts/2fa/recovery-codes/download/": Route(
        fixed("/accounts/2fa/recovery-codes/download/"), anon=302, other=404, owner=404
    ),
    # The app's pages.
    "dashboard/": login_page("/dashboard/"),
    "billing/": login_page("/billing/"),
    "billing/buy/": post_only(fixed("/billing/buy/")),
    "billing/buy/<int:pack_id>/": post_only(lambda w: f"/billing/buy/{w.pack.pk}/"),
    "billing/subscribe/": post_only(fixed("/billing/subscribe/")),
    "billing/portal/": post_only(fixed("/billing/portal/")),
    "billing/success/": Route(
        lambda w: f"/billing/success/?session_id={w.checkout.stripe_session_id}",
        anon=302,
        other=404,
        owner=200,
    ),
    # Renders for anyone signed in, but shows a purchase only to its owner (checked below).
    "billing/cancel/": Route(
        lambda w: f"/billing/cancel/?checkout={w.checkout.pk}", anon=302, other=200, owner=200
    ),
    "billing/export.csv": login_page("/billing/export.csv"),
    "billing/standin/<str:session_id>/": Route(
        lambda w: f"/billing/standin/{w.checkout.stripe_session_id}/",
        anon=302,
        other=404,
        owner=200,
        post=(302, 303),
    ),
    "generations/": login_page("/generations/"),
    "generations/new/": login_page("/generations/new/", post=(200, 400)),
    "generations/estimate/": Route(
        fixed("/generations/estimate/"), anon=302, other=405, owner=405, post=200
    ),
    "generations/<uuid:generation_id>/": Route(
        lambda w: f"/generations/{w.generation.pk}/", anon=302, other=404, owner=200
    ),
    "generations/<uuid:generation_id>/progress/": Route(
        lambda w: f"/generations/{w.generation.pk}/progress/", anon=302, other=404, owner=200
    ),
    "generations/<uuid:generation_id>/cancel/": Route(
        lambda w: f"/generations/{w.generation.pk}/cancel/",
        anon=302,
        other=405,
        owner=405,
        post=302,
        extra={"other_post": 404},
    ),
    # The owner deletes a finished generation (or is told it cannot be yet); Bob gets 404.
    "generations/<uuid:generation_id>/delete/": Route(
        lambda w: f"/generations/{w.generation.pk}/delete/",
        anon=302,
        other=405,
        owner=405,
        post=302,
        extra={"other_post": 404},
    ),
    # Account pages: each shows only the signed-in user's own data.
    "account/data/": login_page("/account/data/"),
    "account/data/export/": post_only(fixed("/account/data/export/")),
    # An export id nobody owns, and Alice's id for Bob, are the same 404.
    "account/data/exports/<uuid:export_id>/": Route(
        fixed("/account/data/exports/00000000-0000-4000-8000-000000000000/"),
        anon=302,
        other=404,
        owner=404,
    ),
    # Without the password the deletion form is refused (400) and nothing changes.
    "account/delete/": login_page("/account/delete/", post=400),
    "account/emails/": login_page("/account/emails/", post=302),
    # Public and POST-only: the answer never says whether the address exists.
    "account/verify/resend/": Route(
        fixed("/account/verify/resend/"), anon=405, other=405, owner=405, post=302
    ),
    # The world's generation has not succeeded, so even its owner has no output to open yet.
    "generations/<uuid:generation_id>/media/<uuid:asset_id>/": Route(
        lambda w: f"/generations/{w.generation.pk}/media/{w.asset.pk}/",
        anon=302,
        other=404,
        owner=404,
    ),
    "generations/<uuid:generation_id>/media/<uuid:asset_id>/download/": Route(
        lambda w: f"/generations/{w.generation.pk}/media/{w.asset.pk}/download/",
        anon=302,
        other=404,
        owner=404,
    ),
    "media/<uuid:asset_id>/": Route(
        lambda w: f"/media/{w.asset.pk}/", anon=302, other=404, owner=302
    ),
    "media/<uuid:asset_id>/thumbnail/": Route(
        lambda w: f"/media/{w.asset.pk}/thumbnail/", anon=302, other=404, owner=302
    ),
    # Only the filesystem backend serves files; with S3 the route answers 404 to everyone.
    "media/file/<str:token>/": Route(
        fixed("/media/file/forged-token/"), anon=404, other=404, owner=404
    ),
    # Signed webhooks: POST only, no session, no CSRF; the signature is the credential.
    "webhooks/stripe/": Route(
        fixed("/webhooks/stripe/"), anon=405, other=405, owner=405, post=400, csrf=False
    ),
    "webhooks/providers/<slug:provider>/": Route(
        fixed("/webhooks/providers/babysea/"), anon=405, other=405, owner=405, post=401, csrf=False
    ),
}


def url_patterns(urlconf: str | None = None) -> list[str]:
    """Return every route the resolver knows, as ``prefix + pattern`` strings."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return list(walk(get_resolver(urlconf).url_patterns, ""))


def is_admin(route: str) -> bool:
    return route.startswith(settings.ADMIN_URL)


def admin_sample(route: str, world: World) -> str:
    """Build a concrete admin URL for a pattern (ids of Alice's rows where one is needed)."""
    path = route.replace("^", "").replace("$", "")
    path = re.sub(r"\(\?P<app_label>[^)]*\)", "generation", path)
    path = re.sub(r"\(\?P<url>[^)]*\)", "nowhere/", path)
    path = re.sub(r"<path:object_id>|<object_id>", str(world.generation.pk), path)
    path = re.sub(r"<[^>]+>", "1", path)
    return "/" + path


def as_tuple(value) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


def assert_headers(response, url: str) -> None:
    """Check the security headers every HTML page must carry."""
    if "text/html" not in response.get("Content-Type", ""):
        return
    csp = response.get("Content-Security-Policy", "")
    assert csp, f"{url} has no Content-Security-Policy"
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("script-src") == ["'self'"], f"{url}: script-src {directives}"
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, f"{url}: {csp}"
    assert directives.get("object-src") == ["'none'"], url
    assert directives.get("frame-ancestors") == ["'none'"], url
    assert response.get("X-Content-Type-Options") == "nosniff", url
    assert response.get("Referrer-Policy") == "same-origin", url
    assert response.get("X-Frame-Options") == "DENY", url


def test_every_url_pattern_is_classified():
    """A route without an access rule fails here: add it to ROUTES with its expected answers."""
    unknown = [r for r in url_patterns() if r not in ROUTES and not is_admin(r)]
    assert not unknown, f"classify these routes in tests/security/test_access_matrix.py: {unknown}"
    stale = [r for r in ROUTES if r not in url_patterns()]
    assert not stale, f"ROUTES lists patterns the resolver no longer has: {stale}"


def test_a_route_added_without_classification_is_caught():
    """The classifier sees a new route the moment it is mounted (this file is the gate)."""
    import sys
    import types

    from django.http import HttpResponse
    from django.urls import include, path

    scratch = types.ModuleType("scratch_urls")
    scratch.urlpatterns = [
        path("", include("config.urls")),
        path("billing/refund-everything/", lambda request: HttpResponse("ok")),
    ]
    sys.modules["scratch_urls"] = scratch
    try:
        unknown = [r for r in url_patterns("scratch_urls") if r not in ROUTES and not is_admin(r)]
    finally:
        del sys.modules["scratch_urls"]
    assert unknown == ["billing/refund-everything/"]


def test_each_route_answers_each_role_as_classified(world):
    """Anonymous is sent to sign in, Bob gets 404 for Alice's ids, Alice gets her page."""
    clients = {
        "anon": csrf_client(),
        "other": csrf_client(world.bob),
        "owner": csrf_client(world.alice),
    }
    failures = []
    for route in url_patterns():
        if is_admin(route):
            continue
        spec = ROUTES[route]
        url = spec.url(world)
        for role, client in clients.items():
            response = client.get(url)
            expected = as_tuple(getattr(spec, role))
            if response.status_code not in expected:
                failures.append(f"GET {url} as {role}: {response.status_code}, want {expected}")
                continue
            # Signed-out visitors of the app's pages go to sign-in, never elsewhere.
            app_page = route.startswith(("dashboard", "billing", "generations", "media"))
            if role == "anon" and response.status_code == 302 and app_page:
                location = response["Location"]
                if not location.startswith(LOGIN):
                    failures.append(f"GET {url} as anon redirected to {location}")
            assert_headers(response, url)
    assert not failures, "\n".join(failures)


def test_another_users_purchase_is_never_shown(world):
    """The cancel page renders for Bob but names none of Alice's purchase details."""
    response = csrf_client(world.bob).get(f"/billing/cancel/?checkout={world.checkout.pk}")
    assert response.status_code == 200
    assert world.checkout.stripe_session_id.encode() not in response.content
    assert str(world.checkout.pk).encode() not in response.content


def test_state_changing_posts_answer_as_classified_with_a_valid_token(world):
    """With a CSRF token, owners' actions go through and Bob's reach for Alice's ids gets 404."""
    failures = []
    for route, spec in ROUTES.items():
        if spec.post is None or not spec.csrf:
            continue
        url = spec.url(world)
        for role, user in (("owner", world.alice), ("other", world.bob)):
            expected = as_tuple(spec.post)
            if role == "other":
                expected = as_tuple(spec.extra.get("other_post", spec.post))
                if route.startswith("billing/standin"):
                    expected = (404,)
            client = csrf_client(user)
            client.get("/dashboard/")
            token = client.cookies["csrftoken"].value
            response = client.post(url, {"csrfmiddlewaretoken": token})
            if response.status_code not in expected:
                failures.append(f"POST {url} as {role}: {response.status_code}, want {expected}")
    assert not failures, "\n".join(failures)


def test_post_without_csrf_token_is_refused_everywhere_but_the_webhooks(world):
    """Every route refuses a signed-in POST with no token (403); webhooks need a signature."""
    client = csrf_client(world.alice)
    failures = []
    for route in url_patterns():
        if is_admin(route):
            url = admin_sample(route, world)
            exempt = False
        else:
            url, exempt = ROUTES[route].url(world), not ROUTES[route].csrf
        response = client.post(url, {"anything": "1"})
        if exempt:
            if response.status_code == 403 or response.status_code >= 500:
                failures.append(f"webhook {url} answered {response.status_code}")
        elif response.status_code != 403:
            failures.append(f"POST {url} without CSRF: {response.status_code}, want 403")
    assert not failures, "\n".join(failures)


def test_admin_is_behind_staff_login_at_its_configured_path(world):
    """Every admin route sends anonymous and non-staff users to the admin sign-in."""
    admin_login = f"/{settings.ADMIN_URL}login/"
    anon, alice, staff = csrf_client(), csrf_client(world.alice), csrf_client(world.staff)
    failures = []
    routes = [r for r in url_patterns() if is_admin(r)]
    assert routes, "the admin is not mounted"
    for route in routes:
        url = admin_sample(route, world)
        if url.startswith(admin_login) or url == f"/{settings.ADMIN_URL}logout/":
            continue
        for role, client in (("anon", anon), ("non-staff", alice)):
            response = client.get(url)
            if response.status_code != 302 or not response["Location"].startswith(admin_login):
                failures.append(f"GET {url} as {role}: {response.status_code}")
        if route.endswith("/$") and "(?P<" not in route and "<" not in route:
            # Changelists and the index render for staff.
            response = staff.get(url)
            if response.status_code != 200:
                failures.append(f"GET {url} as staff: {response.status_code}")
            assert_headers(response, url)
    assert not failures, "\n".join(failures)
    assert staff.get(f"/{settings.ADMIN_URL}").status_code == 200
    # The admin's sign-in is allauth's (rate limits, two-factor), keeping the destination.
    handed_over = anon.get(f"{admin_login}?next=/{settings.ADMIN_URL}")["Location"]
    assert handed_over == f"{LOGIN}?next=%2F{settings.ADMIN_URL.strip('/')}%2F"
