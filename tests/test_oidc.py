"""The optional in-app OIDC check: Google-signed ID tokens, verified without any network.

Tokens are signed here with a generated RSA key, and the verifier is handed its certificate in
place of Google's; the certificate fetch itself is checked against a loopback server.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from collector.app import create_app
from collector.errors import ConfigError
from collector.http.auth import GoogleCerts, OidcVerifier
from tests.helpers import CountingReader, make_settings

AUDIENCE = "https://rt-mp-collector-abc123-uc.a.run.app"
INVOKER = "scheduler-invoker@my-project.iam.gserviceaccount.com"
WINDOW = "/events?from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z"


def new_key() -> tuple[bytes, str]:
    """A private key (PEM) and its self-signed certificate (PEM), as Google publishes them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM).decode()


KEY, CERT = new_key()
OTHER_KEY, OTHER_CERT = new_key()


def token(key: bytes = KEY, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "1234567890",
        "sub": "1234567890",
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    signer = crypt.RSASigner.from_string(key, key_id=kid)
    return jwt.encode(signer, payload).decode()


class StaticCerts:
    """Certificates as Google serves them; `published` is what the next refresh brings."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs = certs
        self.published = certs
        self.refreshes = 0

    def get(self, refresh: bool = False) -> dict[str, str]:
        if refresh:
            self.refreshes += 1
            self.certs = self.published
        return self.certs


@pytest.fixture
def protected() -> Iterator[tuple[Any, CountingReader, StaticCerts]]:
    settings = make_settings(
        AUTH_OIDC_AUDIENCE=AUDIENCE,
        AUTH_OIDC_INVOKERS=f"someone@x.iam.gserviceaccount.com, {INVOKER}",
    )
    reader = CountingReader(settings)
    app = create_app(settings, reader=reader)
    certs = StaticCerts({"k1": CERT})
    app.extensions["oidc"].certs = certs
    yield app.test_client(), reader, certs


def get(client: Any, bearer: str | None, path: str = WINDOW, scheme: str = "Bearer") -> Any:
    headers = {"Authorization": f"{scheme} {bearer}"} if bearer is not None else {}
    return client.get(path, headers=headers)


def test_off_by_default() -> None:
    settings = make_settings()
    reader = CountingReader(settings)
    app = create_app(settings, reader=reader)
    assert "oidc" not in app.extensions
    assert app.test_client().get(WINDOW).status_code == 200


def test_a_valid_token_from_an_invoker_is_let_through(protected) -> None:
    client, reader, _ = protected
    r = get(client, token())
    assert r.status_code == 200 and reader.calls == 1
    r = get(client, token(email=INVOKER.upper()))  # emails compare without case
    assert r.status_code == 200


def test_healthz_stays_open(protected) -> None:
    client, _, _ = protected
    assert client.get("/healthz").status_code == 200


REFUSALS = [
    ("no header", None, "Bearer", 401, "missing Authorization"),
    ("basic auth", "dXNlcjpwYXNz", "Basic", 401, "must be 'Bearer"),
    ("empty bearer", "", "Bearer", 401, "must be 'Bearer"),
    ("not a JWT", "not.a.jwt-at-all", "Bearer", 401, "not a well-formed JWT"),
    ("garbage", "eyJhbGciOiJSUzI1NiJ9.bm9wZQ.c2ln", "Bearer", 401, "not a well-formed JWT"),
    ("too long", "a" * 9000, "Bearer", 401, "too long"),
]


@pytest.mark.parametrize(
    ("bearer", "scheme", "status", "says"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_malformed_credentials_are_refused(protected, bearer, scheme, status, says) -> None:
    client, reader, _ = protected
    r = get(client, bearer, scheme=scheme)
    assert r.status_code == status
    body = r.get_json()
    assert says in body["error"] and body["code"] == "unauthenticated"
    assert reader.calls == 0
    if bearer:
        assert bearer not in r.get_data(as_text=True)


def _hs256() -> str:
    signer = crypt.RSASigner.from_string(KEY, key_id="k1")
    good = jwt.encode(signer, {"aud": AUDIENCE}).decode()
    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()
    head = base64.urlsafe_b64encode(header).rstrip(b"=").decode()
    return head + good[good.index(".") :]


BAD_TOKENS = [
    ("signed by another key", lambda: token(key=OTHER_KEY), 401, "does not verify"),
    ("unknown key id", lambda: token(kid="k9"), 401, "not signed by a current Google key"),
    ("HS256", _hs256, 401, "RS256"),
    (
        "expired",
        lambda: token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        401,
        "expired",
    ),
    ("from the future", lambda: token(iat=int(time.time()) + 3600), 401, "not valid yet"),
    ("no exp", lambda: token(exp=None), 401, "lacks iat/exp"),
    ("wrong issuer", lambda: token(iss="https://evil.example.com"), 401, "not issued by Google"),
    ("wrong audience", lambda: token(aud="https://other.run.app"), 401, "another audience"),
    ("audience with a path", lambda: token(aud=AUDIENCE + "/events"), 401, "another audience"),
    ("wrong email", lambda: token(email="intruder@x.iam.gserviceaccount.com"), 403, "may not"),
    ("unverified email", lambda: token(email_verified=False), 403, "not verified"),
    ("email_verified as text", lambda: token(email_verified="true"), 403, "not verified"),
    ("no email", lambda: token(email=None), 403, "no email"),
]


@pytest.mark.parametrize(
    ("make", "status", "says"), [t[1:] for t in BAD_TOKENS], ids=[t[0] for t in BAD_TOKENS]
)
def test_bad_tokens_are_refused_saying_why_without_echoing_them(
    protected, capsys, make, status, says
) -> None:
    client, reader, _ = protected
    bearer = make()
    r = get(client, bearer)
    body = r.get_json()
    assert r.status_code == status, body
    assert says in body["error"], body
    assert body["code"] == ("forbidden" if status == 403 else "unauthenticated")
    assert reader.calls == 0
    signature = bearer.rsplit(".", 1)[-1]
    captured = capsys.readouterr()
    for text in (r.get_data(as_text=True), captured.out, captured.err):
        assert bearer not in text and signature not in text


def test_a_new_key_id_refreshes_the_certificates_once(protected) -> None:
    client, _, certs = protected
    certs.published = {"k1": CERT, "k2": OTHER_CERT}  # Google rotated in a new key
    assert get(client, token(key=OTHER_KEY, kid="k2")).status_code == 200
    assert certs.refreshes == 1
    assert get(client, token()).status_code == 200
    assert certs.refreshes == 1


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AUTH_OIDC_AUDIENCE": AUDIENCE}, "go together"),
        ({"AUTH_OIDC_INVOKERS": INVOKER}, "go together"),
        ({"AUTH_OIDC_AUDIENCE": AUDIENCE + "?x=1", "AUTH_OIDC_INVOKERS": INVOKER}, "query"),
        ({"AUTH_OIDC_AUDIENCE": AUDIENCE, "AUTH_OIDC_INVOKERS": "scheduler"}, "emails"),
    ],
)
def test_half_or_wrong_settings_stop_start_up(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(**env)
    assert says in err.value.message


# -- Google's certificate endpoint, stood in for on loopback ----------------------------------


class _CertsServer(ThreadingHTTPServer):
    daemon_threads = True
    hits = 0
    status = 200


class _CertsHandler(BaseHTTPRequestHandler):
    server: _CertsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits += 1
        body = json.dumps({"k1": CERT}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=19000, must-revalidate")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def certs_server() -> Iterator[_CertsServer]:
    server = _CertsServer(("127.0.0.1", 0), _CertsHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_google_certificates_are_fetched_once_and_cached(certs_server) -> None:
    url = f"http://127.0.0.1:{certs_server.server_address[1]}/oauth2/v1/certs"
    verifier = OidcVerifier(AUDIENCE, (INVOKER,), certs=GoogleCerts(url))
    for _ in range(3):
        assert verifier.verify(f"Bearer {token()}")["email"] == INVOKER
    assert certs_server.hits == 1


def test_certificates_that_cannot_be_fetched_answer_503_not_401(certs_server) -> None:
    certs_server.status = 500
    url = f"http://127.0.0.1:{certs_server.server_address[1]}/oauth2/v1/certs"
    settings = make_settings(AUTH_OIDC_AUDIENCE=AUDIENCE, AUTH_OIDC_INVOKERS=INVOKER)
    reader = CountingReader(settings)
    app = create_app(settings, reader=reader)
    app.extensions["oidc"].certs = GoogleCerts(url)
    r = app.test_client().get(WINDOW, headers={"Authorization": f"Bearer {token()}"})
    assert r.status_code == 503 and r.get_json()["code"] == "auth_unavailable"
    assert reader.calls == 0
