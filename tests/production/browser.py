"""A small HTTP client that behaves like a browser behind HTTPS: cookies, CSRF, forms.

The proxy speaks plain HTTP while the app believes every request is https, so its cookies are
``Secure``. httpx's cookie jar would rightly never send those over http, so this client keeps
cookies itself, as the browser on the other side of a real TLS proxy would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

import httpx


class WalkFailed(Exception):
    """A step of the walk did not get the answer a customer should get."""


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].fields.setdefault(a["name"], a.get("value", ""))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select:
            form = self.forms[-1]
            if "selected" in a or self._select not in form.fields:
                form.fields[self._select] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.forms[-1].fields[a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1].fields[self._textarea] += data


def forms_in(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class Browser:
    """One visitor: cookies, the https origin the app sees, every response checked."""

    def __init__(self, proxy_url: str, origin: str) -> None:
        self.proxy_url = proxy_url.rstrip("/")
        self.origin = origin.rstrip("/")  # what the app believes it is served at
        self.cookies: dict[str, str] = {}
        self.http = httpx.Client(timeout=60, follow_redirects=False)

    def request(
        self, method: str, path: str, *, expect: tuple[int, ...], **kwargs
    ) -> httpx.Response:
        """Send through the proxy and fail the walk unless the status is one of ``expect``."""
        path = self.local(path)
        headers = kwargs.pop("headers", {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST":
            headers.setdefault("Origin", self.origin)
            headers.setdefault("Referer", self.origin + path)
        self.http.cookies.clear()
        response = self.http.request(method, self.proxy_url + path, headers=headers, **kwargs)
        for raw in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if response.status_code not in expect:
            raise WalkFailed(
                f"{method} {path} answered {response.status_code}, expected {expect}: "
                f"{response.text[:300]!r}"
            )
        return response

    def local(self, url: str) -> str:
        """Return the path (and query) of an absolute URL on the app's origin, or ``url``."""
        if url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                raise WalkFailed(f"{url} is not on the app's origin {self.origin}")
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return url

    def get(self, path: str, *, expect: tuple[int, ...] = (200,), **kwargs) -> httpx.Response:
        return self.request("GET", path, expect=expect, **kwargs)

    def submit(
        self, page_path: str, html: str, *, having: str, values: dict[str, str], expect=(302, 303)
    ) -> httpx.Response:
        """Fill the form on ``html`` that has a field or action ``having``, and post it."""
        for form in forms_in(html):
            if form.method == "post" and (having in form.fields or having in form.action):
                data = {**form.fields, **values}
                action = urljoin(page_path, form.action or page_path)
                return self.request("POST", action, expect=expect, data=data)
        raise WalkFailed(f"no form with {having!r} on {page_path}")

    def redirect_target(self, response: httpx.Response) -> str:
        return urljoin(self.origin + "/", response.headers["Location"])

    def balance(self, html: str) -> int:
        found = re.search(r"Balance: </span>([\d,]+) credits", html)
        if not found:
            raise WalkFailed("the header shows no balance")
        return int(found.group(1).replace(",", ""))
