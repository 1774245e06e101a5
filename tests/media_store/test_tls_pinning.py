"""Over HTTPS the pinned connection still proves the host's name: SNI and certificate match it."""

import ssl
import subprocess
import threading
import uuid

import httpx
import pytest

from media_store import api, fetch
from tests.media_store.conftest import PayloadServer, image_bytes


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for cdn.example.test, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=cdn.example.test", "-addext", "subjectAltName=DNS:cdn.example.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate):
    cert, key = certificate
    server = PayloadServer()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.sni_names = names
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def trusting_transport(monkeypatch, certificate):
    """Trust the test certificate and resolve cdn.example.test to loopback."""
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    monkeypatch.setattr(fetch, "open_transport", lambda: httpx.HTTPTransport(verify=trust))
    monkeypatch.setattr(fetch, "resolve_host", lambda host, port: ["127.0.0.1"])


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed", "trusting_transport")
def test_https_download_to_a_pinned_address_sends_and_verifies_the_name(tls_server):
    """The socket goes to the checked address while TLS sees and verifies the host's name."""
    png = image_bytes("PNG")
    tls_server.serve("/a.png", png)
    info = api.ingest(
        owner_id=uuid.uuid4(),
        generation_id=uuid.uuid4(),
        source_url=f"https://cdn.example.test:{tls_server.port}/a.png",
        allowed_hosts=["cdn.example.test"],
    )
    assert info.size == len(png)
    assert tls_server.sni_names == ["cdn.example.test"]
    assert tls_server.requests == [("/a.png", f"cdn.example.test:{tls_server.port}")]


@pytest.mark.django_db
@pytest.mark.usefixtures("private_hosts_allowed", "trusting_transport")
def test_certificate_for_another_name_is_not_accepted(tls_server):
    """A name the certificate does not cover fails the handshake; nothing is requested."""
    tls_server.serve("/a.png", image_bytes("PNG"))
    with pytest.raises(api.IngestTemporaryError):
        api.ingest(
            owner_id=uuid.uuid4(),
            generation_id=uuid.uuid4(),
            source_url=f"https://other.example.test:{tls_server.port}/a.png",
            allowed_hosts=["other.example.test"],
        )
    assert tls_server.requests == []
