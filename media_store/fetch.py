"""Download a provider's output without letting its URL reach inside our network.

Every hop (the first URL and each redirect) is checked against the host allow-list, its name is
resolved once, every address is checked, and the connection goes to the checked address with the
original Host header and TLS server name, so a second DNS answer can never be used (rebinding).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import httpx
from django.conf import settings

from media_store.exceptions import IngestRefused, IngestTemporaryError

SPOOL_BYTES = 8 * 1024 * 1024
REDIRECTS = {301, 302, 303, 307, 308}
GONE = {404, 410}
RETRYABLE = {408, 425, 429}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Return every address ``host`` resolves to (the seam tests replace)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise IngestTemporaryError(f"cannot resolve {host}: {error}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~10 ms of CPU), so one per process. Sharing it
    # shares no connection or TLS session: Python resumes a client session only when told to.
    return httpx.create_ssl_context()


def open_transport() -> httpx.BaseTransport:
    """Return the transport that makes the connections (the seam tests route through)."""
    return httpx.HTTPTransport(retries=0, verify=_tls_context())


@dataclass
class Download:
    body: BinaryIO
    size: int
    sha256: str
    head: bytes
    final_host: str


def address_is_public(address: str) -> bool:
    """Return whether ``address`` is globally routable, looking through IPv6 wrappers of IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_is_public(str(embedded))
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Match an exact host, or any subdomain of an entry written ``.example.com``."""
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def _checked_address(url: httpx.URL, allowed_hosts: Sequence[str], resolver: Resolver) -> str:
    if url.scheme not in ("http", "https"):
        raise IngestRefused("bad_url", f"scheme {url.scheme!r} is not http or https")
    if url.userinfo:
        raise IngestRefused("bad_url", "credentials in the URL")
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise IngestRefused("bad_url", "no host")
    if not host_allowed(host, allowed_hosts):
        raise IngestRefused("host_not_allowed", host)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = resolver(host, url.port or (443 if url.scheme == "https" else 80))
    if not addresses:
        raise IngestTemporaryError(f"{host} resolved to nothing")
    if not settings.INGEST_ALLOW_PRIVATE_HOSTS and host not in settings.INGEST_INTERNAL_HOSTS:
        # Refuse if any answer is private: a mixed answer is a rebinding attempt, not a CDN.
        private = [a for a in addresses if not address_is_public(a)]
        if private:
            raise IngestRefused("private_address", f"{host} resolves to {private[0]}")
    return addresses[0]


def _pinned_request(client: httpx.Client, url: httpx.URL, address: str) -> httpx.Request:
    host_header = url.netloc.decode("ascii")
    pinned = url.copy_with(host=address)
    request = client.build_request("GET", pinned, headers={"Host": host_header})
    if url.scheme == "https":
        # Certificate and SNI are checked against the name, while the socket uses the address.
        request.extensions["sni_hostname"] = url.raw_host.decode("ascii")
    return request


def download(
    source_url: str,
    allowed_hosts: Sequence[str],
    *,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Download:
    """Stream ``source_url`` into a spooled file with every rule applied; raise on refusal."""
    resolver = resolver or resolve_host
    try:
        url = httpx.URL(source_url)
    except (httpx.InvalidURL, TypeError) as error:
        raise IngestRefused("bad_url", str(error)) from None
    timeout = httpx.Timeout(
        settings.INGEST_READ_TIMEOUT_SECONDS, connect=settings.INGEST_CONNECT_TIMEOUT_SECONDS
    )
    deadline = time.monotonic() + settings.INGEST_TOTAL_TIMEOUT_SECONDS
    for _hop in range(settings.INGEST_MAX_REDIRECTS + 1):
        address = _checked_address(url, allowed_hosts, resolver)
        # A new client per hop: a pooled TLS connection verified for one name must never carry
        # a request for another name that happens to share its address. trust_env=False: a
        # proxy from the environment would do its own DNS and undo the pinning.
        with httpx.Client(
            transport=transport or open_transport(),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "media-store-ingest/1"},
        ) as client:
            request = _pinned_request(client, url, address)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as error:
                raise IngestTemporaryError(f"timed out connecting to {url.host}: {error}") from None
            except httpx.TransportError as error:
                raise IngestTemporaryError(f"cannot reach {url.host}: {error}") from None
            try:
                if response.status_code in REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise IngestRefused("bad_redirect", "redirect without Location")
                    url = url.join(location)
                    continue
                _raise_for_status(response.status_code, url)
                return _stream_body(response, url.host, deadline)
            finally:
                response.close()
    raise IngestRefused("too_many_redirects", f"more than {settings.INGEST_MAX_REDIRECTS}")


def _raise_for_status(status: int, url: httpx.URL) -> None:
    if status == 200:
        return
    if status in GONE:
        raise IngestRefused("output_gone", f"{url.host} answered {status}")
    if status >= 500 or status in RETRYABLE:
        raise IngestTemporaryError(f"{url.host} answered {status}")
    raise IngestRefused("http_error", f"{url.host} answered {status}")


def _stream_body(response: httpx.Response, host: str, deadline: float) -> Download:
    limit = settings.INGEST_MAX_BYTES
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise IngestRefused("too_large", f"declared {declared} bytes, limit {limit}")
    # Handed to the caller, who closes it; every failure path below closes it here.
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        # The cap counts decoded bytes, so a compressed bomb stops at the same limit.
        for chunk in response.iter_bytes(chunk_size=64 * 1024):
            size += len(chunk)
            if size > limit:
                raise IngestRefused("too_large", f"over {limit} bytes")
            if time.monotonic() > deadline:
                raise IngestTemporaryError(f"download from {host} took too long")
            if len(head) < 64:
                head += chunk[: 64 - len(head)]
            digest.update(chunk)
            body.write(chunk)
    except httpx.TimeoutException as error:
        body.close()
        raise IngestTemporaryError(f"timed out reading from {host}: {error}") from None
    except httpx.TransportError as error:
        body.close()
        raise IngestTemporaryError(f"connection to {host} broke: {error}") from None
    except httpx.DecodingError as error:
        body.close()
        raise IngestRefused("unsupported_type", f"undecodable body: {error}") from None
    except BaseException:
        body.close()
        raise
    body.seek(0)
    return Download(body=body, size=size, sha256=digest.hexdigest(), head=head, final_host=host)
