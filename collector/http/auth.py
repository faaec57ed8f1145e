"""An optional in-app check of Google-signed OIDC tokens, for deployments not behind Cloud Run IAM.

On Cloud Run with `--no-allow-unauthenticated`, IAM checks the caller's identity token before a
request reaches the service, and this check stays off (the default). Where the service can be
reached without IAM (another platform, a public ingress, a proxy in front), set
AUTH_OIDC_AUDIENCE (the audience the caller asks its token for: Cloud Scheduler's OIDC audience,
the service's base URL) and AUTH_OIDC_INVOKERS (comma-separated service-account emails). Then
every endpoint but /healthz needs `Authorization: Bearer <Google ID token>`: signed by one of
Google's keys, issued by Google, unexpired, for that audience, for a verified email in the list.

A refusal says what is wrong (401: no token, not a JWT, bad signature, expired, wrong issuer or
audience; 403: email not verified or not an invoker) and never echoes the token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from flask import Flask, jsonify, request

from collector.config import Settings
from collector.errors import AuthUnavailable, CollectorError, Forbidden, Unauthenticated
from collector.http.errors import error_answer, status_of

log = logging.getLogger("collector.auth")

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
OPEN_PATHS = frozenset({"/healthz"})
CLOCK_SKEW_SECONDS = 10
MAX_TOKEN_CHARS = 8192
CERTS_DEFAULT_MAX_AGE = 3600
FORBIDDEN = "Google ID token (see AUTH_OIDC_INVOKERS)"


class GoogleCerts:
    """Google's token-signing certificates by key id, cached as Google's Cache-Control allows."""

    def __init__(self, url: str = GOOGLE_CERTS_URL, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self, refresh: bool = False) -> Mapping[str, str]:
        with self._lock:
            if refresh or not self._certs or time.monotonic() >= self._expires:
                self._fetch()
            return self._certs

    def _fetch(self) -> None:
        try:
            response = requests.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            certs = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise AuthUnavailable(
                f"could not fetch Google's token certificates ({type(exc).__name__}); retry shortly"
            ) from None
        if not isinstance(certs, dict):
            raise AuthUnavailable("Google's token certificates were not a JSON object")
        match = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
        self._certs = {str(k): str(v) for k, v in certs.items()}
        self._expires = time.monotonic() + (int(match.group(1)) if match else CERTS_DEFAULT_MAX_AGE)


class OidcVerifier:
    def __init__(
        self,
        audience: str,
        invokers: tuple[str, ...],
        certs: Any = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.audience = audience
        self.invokers = frozenset(e.lower() for e in invokers)
        self.certs = certs or GoogleCerts()  # anything with get(refresh=False) -> {kid: PEM}
        self.now = now
        # google-auth's JWT module loads `cryptography`, a large share of a process's start-up:
        # only a service that checks tokens loads it, here at start-up (not by a request's
        # thread, while another imports it too).
        from google.auth import exceptions, jwt

        self._jwt = jwt
        self._bad = (ValueError, TypeError, exceptions.GoogleAuthError)

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the request's token; raises with the reason otherwise."""
        token = _bearer(authorization)
        try:
            header = self._jwt.decode_header(token)
            kid = header.get("kid")
            alg = header.get("alg")
        except self._bad:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        if alg != "RS256":
            raise Unauthenticated("the token is not signed RS256 as Google ID tokens are")
        certs = self.certs.get()
        if kid not in certs:
            certs = self.certs.get(refresh=True)  # Google rotates its keys
        if not isinstance(kid, str) or kid not in certs:
            raise Unauthenticated("the token is not signed by a current Google key")
        claims = self._verified(token, certs[kid])
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthenticated("the token was not issued by Google (iss)")
        if claims.get("aud") != self.audience:
            raise Unauthenticated(
                f"the token is for another audience ({_show(claims.get('aud'))}): ask for one "
                "whose audience is AUTH_OIDC_AUDIENCE (the service's base URL)"
            )
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise Forbidden("the token carries no email: " + FORBIDDEN)
        if claims.get("email_verified") is not True:
            raise Forbidden(f"the token's email {_show(email)} is not verified")
        if email.lower() not in self.invokers:
            raise Forbidden(f"{_show(email)} may not call this service: " + FORBIDDEN)
        return claims

    def _verified(self, token: str, cert: str) -> dict[str, Any]:
        try:
            claims = self._jwt.decode(
                token, certs=cert, verify=True, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
            )
        except self._bad:
            # google-auth checks the signature before the times: say which one failed, in our
            # words (its messages quote the token).
            raise Unauthenticated(self._why(token)) from None
        return dict(claims)

    def _why(self, token: str) -> str:
        try:
            claims = self._jwt.decode(token, verify=False)
            exp, iat = float(claims["exp"]), float(claims["iat"])
        except (*self._bad, KeyError):
            return "the token's signature does not verify, or it lacks iat/exp"
        now = self.now()
        if exp + CLOCK_SKEW_SECONDS < now:
            return "the token has expired: get a fresh one"
        if iat - CLOCK_SKEW_SECONDS > now:
            return "the token is not valid yet (iat is in the future): check the clocks"
        return "the token's signature does not verify against Google's keys"


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(
            "missing Authorization: Bearer <Google ID token> (for example "
            "gcloud auth print-identity-token --audiences=<AUTH_OIDC_AUDIENCE>)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <Google ID token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("the bearer token is too long to be a Google ID token")
    return token


def _show(value: Any) -> str:
    """A claim for a message: quoted, short (claims are the caller's input)."""
    text = str(value)
    return repr(text if len(text) <= 80 else text[:80] + "...")


def install(app: Flask, settings: Settings, verifier: OidcVerifier | None = None) -> None:
    """Require a valid token on every path but /healthz, if AUTH_OIDC_AUDIENCE is set."""
    if verifier is None:
        if not settings.auth_oidc_audience:
            return
        verifier = OidcVerifier(settings.auth_oidc_audience, settings.auth_oidc_invokers)
    app.extensions["oidc"] = verifier

    @app.before_request
    def require_token() -> Any:
        if request.path in OPEN_PATHS:
            return None
        try:
            claims = verifier.verify(request.headers.get("Authorization"))
        except CollectorError as exc:
            log.warning(
                "refused %s %s: %s",
                request.method,
                request.path,
                exc.message,
                extra={"json_fields": {"status": status_of(exc), "code": exc.code}},
            )
            body, status = error_answer(exc)
            return jsonify(body), status
        request.environ["collector.invoker"] = claims.get("email")
        return None
