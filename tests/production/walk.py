"""The customer's journey, step by step, over HTTP through the TLS proxy stand-in."""

from __future__ import annotations

import importlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from tests.billing.fakestripe import encode, make_event, stripe_signature
from tests.production.browser import Browser, WalkFailed
from tests.production.stand_ins import SmtpSink, StripeApi, TlsProxy

HASHED = re.compile(r"\.[0-9a-f]{12}\.\w+$")
TEN_YEARS = 10 * 365 * 24 * 60 * 60
CONFIRM_LINK = re.compile(r"https?://\S+/accounts/confirm-email/\S+/")
MEDIA_LINK = re.compile(r"/media/([0-9a-f-]{36})/")
IMAGE_MAGIC = (b"\x89PNG", b"RIFF", b"\xff\xd8\xff")
# The packs a fresh database sells, with the lookup keys their Stripe Prices carry.
SEEDED_PACKS = importlib.import_module("billing.migrations.0002_seed_packs").PACKS


@dataclass
class Journey:
    browser: Browser
    proxy: TlsProxy
    sink: SmtpSink
    stripe: StripeApi
    stripe_webhook_secret: str
    email: str = field(default_factory=lambda: f"walker-{secrets.token_hex(4)}@example.com")
    password: str = field(default_factory=lambda: "Walk-" + secrets.token_urlsafe(12))
    home_html: str = ""
    credits_bought: int = 0
    generation_path: str = ""

    # Steps, in order; each raises WalkFailed with what a customer would have seen.

    def home(self) -> None:
        page = self.browser.get("/")
        if "<link" not in page.text or "/static/" not in page.text:
            raise WalkFailed("the home page links no static files")
        self.home_html = page.text

    def static_files(self) -> str:
        paths = sorted(set(re.findall(r'(?:href|src)="(/static/[^"]+)"', self.home_html)))
        unhashed = [path for path in paths if not HASHED.search(path)]
        if not paths or unhashed:
            raise WalkFailed(f"static files without a content hash: {unhashed or 'none linked'}")
        for path in paths:
            for encoding in ("br", "gzip"):
                response = self.browser.get(path, headers={"Accept-Encoding": encoding})
                if response.headers.get("Content-Encoding") != encoding:
                    raise WalkFailed(f"{path} is not served {encoding}-compressed")
                cache = response.headers.get("Cache-Control", "")
                age = re.search(r"max-age=(\d+)", cache)
                if not age or int(age.group(1)) < TEN_YEARS or "immutable" not in cache:
                    raise WalkFailed(f"{path} is served with Cache-Control {cache!r}")
        return f"{len(paths)} files, hashed, br+gzip, far-future immutable"

    def sign_up(self) -> None:
        page = self.browser.get("/accounts/signup/")
        values = {"email": self.email, "password1": self.password, "password2": self.password}
        done = self.browser.submit(page.url.path, page.text, having="password2", values=values)
        if "/accounts/confirm-email/" not in done.headers["Location"]:
            raise WalkFailed(f"sign-up went to {done.headers['Location']}, not verification")

    def verify_email(self) -> str:
        message = self.sink.wait_for(self.email)
        text = message.get_body(preferencelist=("plain",)).get_content()
        link = CONFIRM_LINK.search(text)
        if not link:
            raise WalkFailed(f"the verification mail holds no link: {text[:300]!r}")
        path = self.browser.local(link.group(0))
        page = self.browser.get(path)
        self.browser.submit(path, page.text, having="confirm-email", values={})
        return f"mail {message['Subject']!r} via SMTP"

    def log_in(self) -> None:
        page = self.browser.get("/accounts/logout/")
        self.browser.submit("/accounts/logout/", page.text, having="logout", values={})
        self.browser.get("/dashboard/", expect=(302,))
        page = self.browser.get("/accounts/login/")
        values = {"login": self.email, "password": self.password}
        self.browser.submit("/accounts/login/", page.text, having="password", values=values)
        if self.email not in self.browser.get("/dashboard/").text:
            raise WalkFailed("the dashboard after log-in does not name the customer")

    def buy_pack(self) -> str:
        for _name, _slug, _credits, amount, lookup_key, _order in SEEDED_PACKS:
            self.stripe.fake.add_price(
                "price_" + secrets.token_hex(6), unit_amount=amount, lookup_key=lookup_key
            )
        page = self.browser.get("/billing/")
        before = self.browser.balance(page.text)
        sent = self.browser.submit("/billing/", page.text, having="/billing/buy", values={})
        location = sent.headers["Location"]
        if not location.startswith("https://checkout.stripe.com/"):
            raise WalkFailed(f"buying went to {location}, not Stripe Checkout")
        session = self.stripe.fake.complete(location.rstrip("/").rsplit("/", 1)[1])
        key = session["line_items"]["data"][0]["price"]["lookup_key"]
        credits = next(pack[2] for pack in SEEDED_PACKS if pack[4] == key)
        self._post_stripe_event("checkout.session.completed", session)
        self.browser.get(f"/billing/success/?session_id={session['id']}")
        after = self.browser.balance(self.browser.get("/billing/").text)
        if after - before != credits:
            raise WalkFailed(f"the balance went from {before} to {after}, not up by {credits}")
        self.credits_bought = credits
        return f"{credits} credits"

    def _post_stripe_event(self, kind: str, data_object: dict) -> None:
        payload = encode(make_event(kind, data_object))
        headers = {
            "Stripe-Signature": stripe_signature(payload, self.stripe_webhook_secret),
            "Content-Type": "application/json",
        }
        self.browser.request(
            "POST", "/webhooks/stripe/", expect=(200,), content=payload, headers=headers
        )

    def generate(self) -> str:
        path = "/generations/new/?model=flux-schnell"
        page = self.browser.get(path)
        values = {"model": "flux-schnell", "prompt": "A lighthouse at dusk, production check"}
        sent = self.browser.submit(path, page.text, having="prompt", values=values)
        self.generation_path = self.browser.local(self.browser.redirect_target(sent))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            html = self.browser.get(self.generation_path).text
            status = re.search(r'class="badge badge-(\w+)" id="generation-status"', html)
            state = status.group(1) if status else "unknown"
            if state == "succeeded":
                return "BabySea adapter -> local provider -> signed callback -> ingest"
            if state in ("failed", "rejected", "expired", "canceled", "unpaid"):
                raise WalkFailed(f"the generation ended {state}")
            time.sleep(0.5)
        raise WalkFailed(f"the generation is still {state} after 90 s")

    def media(self) -> str:
        html = self.browser.get(self.generation_path).text
        found = MEDIA_LINK.search(html)
        if not found:
            raise WalkFailed("the finished generation shows no media link")
        sent = self.browser.get(found.group(0), expect=(302,))
        signed = sent.headers["Location"]
        if "X-Amz-Signature=" not in signed:
            raise WalkFailed(f"media redirects to an unsigned URL: {signed[:120]}")
        body = httpx.get(signed, timeout=30)
        if body.status_code != 200 or not body.content.startswith(IMAGE_MAGIC):
            raise WalkFailed(f"the signed URL answered {body.status_code}")
        bare = httpx.get(signed.split("?", 1)[0], timeout=30)
        if bare.status_code not in (401, 403):
            raise WalkFailed(f"the object is readable without a signature ({bare.status_code})")
        return f"{len(body.content)} bytes from {urlsplit(signed).netloc}, 403 unsigned"

    def healthz(self) -> None:
        response = self.browser.get("/healthz")
        body = response.json()
        if body.get("ok") is not True:
            raise WalkFailed(f"/healthz says {body}")
        leaked = [
            word for word in ("Error", "Traceback", "127.0.0.1", "_app") if word in response.text
        ]
        if leaked:
            raise WalkFailed(f"/healthz shows internals: {leaked}")

    def no_server_errors(self) -> str:
        if errors := self.proxy.server_errors():
            raise WalkFailed(f"server errors: {errors}")
        return f"{len(self.proxy.statuses)} requests through the proxy, none 5xx"

    def steps(self) -> list[tuple[str, Callable[[], str | None]]]:
        return [
            ("home", self.home),
            ("static files", self.static_files),
            ("sign up", self.sign_up),
            ("verify email", self.verify_email),
            ("log in", self.log_in),
            ("buy a pack", self.buy_pack),
            ("generate", self.generate),
            ("media", self.media),
            ("healthz", self.healthz),
            ("no 5xx", self.no_server_errors),
        ]
