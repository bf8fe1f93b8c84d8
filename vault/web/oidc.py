"""Single sign-on at the escalation desk with OpenID Connect (authorization code + PKCE).

``GET /sso/start`` sends the browser to the provider with a fresh ``state``, ``nonce`` and
PKCE ``code_challenge`` (S256); the three secrets travel in a short-lived cookie that is
encrypted and authenticated (JWE ``dir``/``A256GCM``) under a key derived from the client
secret, so every worker on every host reads it and nobody else can make one.
``GET /sso/callback`` checks ``state``, exchanges the code (with the PKCE verifier and the
client secret), validates the ID token (signature from the provider's JWKS, issuer,
audience, ``azp``, nonce, expiry) and signs in the person linked to the identity
(``person.oidc_subject``, set with ``evidence-vault person link-oidc``). An identity linked
to nobody, or to a disabled or unapproved person, is refused, and so is a link that the
person's log (an entry tagged under the log key) does not vouch for: a database writer
cannot hand an admin's account to their own identity. So is anything else that does not
add up. Refusals are logged by reason, never with the subject.

Configuration: ``[oidc]`` in ``vault.toml`` (``issuer``, ``client_id``,
``client_secret_file``, ``scopes``, ``claim``, ``redirect_url``), each overridden by
``EVIDENCE_VAULT_OIDC_<KEY>``. Without an issuer the routes answer 404.

The session itself is not made here: :func:`get_sign_in` finds
``vault.web.sessions.sign_in_person(request, response, person)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from sqlmodel import select

from vault.db import read_session
from vault.db.models import Person
from vault.errors import ConfigError, InvalidEvidence
from vault.services.context import VaultContext
from vault.services.people import oidc_link, oidc_link_logged

log = logging.getLogger("vault.web.oidc")

STATE_COOKIE = "ev_sso"
STATE_SECONDS = 600  # the time a person has at the provider's sign-in page
ID_TOKEN_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
CLOCK_SKEW_SECONDS = 60
_NEXT = re.compile(r"/(?![/\\])[!-~]{0,500}")  # a path on this site, never //host

#: what ``sign_in_person`` must look like: set the session on ``response`` for ``person``
SignInPerson = Callable[[Request, Response, Person], object]


class SsoRefused(Exception):
    """The sign-in does not add up; ``reason`` is a short code for logs and the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: str = "openid"
    #: the ID token claim that identifies the person (stable, never reassigned: ``sub``)
    claim: str = "sub"
    #: the callback URL registered at the provider; by default this site's /sso/callback
    redirect_url: str | None = None


def load_oidc_settings(home: Path, env: Mapping[str, str]) -> OidcSettings | None:
    """``[oidc]`` of ``home/vault.toml`` with environment overrides; None if no issuer."""
    table: dict = {}
    path = home / "vault.toml"
    if path.exists():
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("oidc", {})

    def value(key: str, default: str | None = None) -> str | None:
        return env.get(f"EVIDENCE_VAULT_OIDC_{key.upper()}") or table.get(key) or default

    issuer = value("issuer")
    if not issuer:
        return None
    client_id, secret_file = value("client_id"), value("client_secret_file")
    if not client_id or not secret_file:
        raise ConfigError(
            "OpenID Connect needs client_id and client_secret_file besides the issuer",
            hint="set them in [oidc] of vault.toml or EVIDENCE_VAULT_OIDC_*",
        )
    secret_path = Path(secret_file) if Path(secret_file).is_absolute() else home / secret_file
    try:
        secret = secret_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the OpenID Connect client secret file: {exc.strerror}",
            hint="client_secret_file names a file (mode 0600) holding the secret",
        ) from exc
    scopes = value("scopes", "openid") or "openid"
    if "openid" not in scopes.split():
        raise ConfigError("OpenID Connect scopes must include openid", hint="scopes = 'openid'")
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        scopes=scopes,
        claim=value("claim", "sub") or "sub",
        redirect_url=value("redirect_url"),
    )


# -- the provider -------------------------------------------------------------------------


class OpenIdProvider:
    """The provider's discovery document and keys (fetched once, keys again on a new kid)."""

    def __init__(self, settings: OidcSettings, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self._http = http or httpx.Client(timeout=10, follow_redirects=False)
        self._metadata: dict | None = None
        self._keys: KeySet | None = None

    def metadata(self) -> dict:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            doc = self._get_json(url)
            # OpenID Connect Discovery 1.0, 4.3: the document names exactly this issuer
            if doc.get("issuer") != self.settings.issuer:
                raise SsoRefused("provider-metadata")
            self._metadata = doc
        return self._metadata

    def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            self._keys = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))
        return self._keys

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return self.metadata()["authorization_endpoint"] + "?" + urlencode(params)

    def exchange(self, code: str, redirect_uri: str, verifier: str) -> str:
        """The ID token for ``code`` (client_secret_basic, RFC 6749 2.3.1)."""
        s = self.settings
        try:
            r = self._http.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(quote(s.client_id, safe=""), quote(s.client_secret, safe="")),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise SsoRefused("provider-unreachable") from exc
        if r.status_code != 200:
            raise SsoRefused("token-exchange")
        token = _json(r).get("id_token")
        if not isinstance(token, str):
            raise SsoRefused("token-exchange")
        return token

    def identity(self, id_token: str, nonce: str, now: float | None = None) -> dict[str, Any]:
        """The validated claims of ``id_token`` (OpenID Connect Core 1.0, 3.1.3.7)."""
        try:
            claims = self._verified(id_token)
        except SsoRefused:
            claims = self._verified(id_token, refresh=True)  # the provider rotated its keys
        s = self.settings
        registry = jwt.JWTClaimsRegistry(
            now=int(now if now is not None else time.time()),
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": s.issuer},
            aud={"essential": True, "value": s.client_id},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SsoRefused("id-token-claims") from exc
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != s.client_id:
            raise SsoRefused("id-token-claims")
        return claims

    def _verified(self, id_token: str, refresh: bool = False) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, self.keys(refresh), algorithms=ID_TOKEN_ALGORITHMS)
        except (JoseError, ValueError) as exc:  # bad signature, unknown kid, alg, garbage
            raise SsoRefused("id-token-signature") from exc
        return token.claims

    def _get_json(self, url: str) -> dict:
        try:
            r = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise SsoRefused("provider-unreachable") from exc
        if r.status_code != 200:
            raise SsoRefused("provider-metadata")
        return _json(r)


def _json(r: httpx.Response) -> dict:
    try:
        doc = r.json()
    except ValueError as exc:
        raise SsoRefused("provider-metadata") from exc
    if not isinstance(doc, dict):
        raise SsoRefused("provider-metadata")
    return doc


# -- who it is ----------------------------------------------------------------------------


def resolve_oidc_person(ctx: VaultContext, issuer: str, subject: str) -> Person | None:
    """The person linked to ``subject`` at ``issuer`` (whatever their state), or None."""
    try:
        link = oidc_link(issuer, subject)
    except InvalidEvidence:
        return None
    with read_session(ctx.engine) as s:
        return s.exec(select(Person).where(Person.oidc_subject == link)).first()


def _active(person: Person) -> bool:
    return person.disabled_at is None and person.approved_at is not None


# -- the state cookie ---------------------------------------------------------------------


def _cookie_key(settings: OidcSettings) -> OctKey:
    # derived, not stored: every worker with the client secret has it, nobody else does
    key = hmac.new(
        settings.client_secret.encode(), b"evidence-vault sso state cookie v1", hashlib.sha256
    )
    return OctKey.import_key(key.digest())


def _seal_state(settings: OidcSettings, state: dict) -> str:
    body = json.dumps({**state, "exp": int(time.time()) + STATE_SECONDS}).encode()
    return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, body, _cookie_key(settings))


def _open_state(settings: OidcSettings, sealed: str | None) -> dict:
    if not sealed:
        raise SsoRefused("state")
    try:
        state = json.loads(jwe.decrypt_compact(sealed, _cookie_key(settings)).plaintext)
    except (JoseError, ValueError) as exc:
        raise SsoRefused("state") from exc
    if not isinstance(state, dict) or not isinstance(state.get("exp"), int):
        raise SsoRefused("state")
    if state["exp"] < time.time():
        raise SsoRefused("state-expired")
    return state


# -- routes -------------------------------------------------------------------------------

router = APIRouter(prefix="/sso", include_in_schema=False)


def get_provider(request: Request) -> OpenIdProvider:
    """The app's provider (``app.state.oidc_provider``), made from the settings once."""
    app = request.app
    provider = getattr(app.state, "oidc_provider", None)
    if provider is None:
        import os

        settings = load_oidc_settings(app.state.ctx.settings.home, os.environ)
        if settings is None:
            raise HTTPException(404, "single sign-on is not configured")
        provider = app.state.oidc_provider = OpenIdProvider(settings)
    return provider


def get_sign_in() -> SignInPerson | None:
    """The seam to the desk's sessions: ``vault.web.sessions.sign_in_person``."""
    try:
        from vault.web.sessions import sign_in_person
    except ImportError:
        return None
    return sign_in_person


Provider = Annotated[OpenIdProvider, Depends(get_provider)]
SignIn = Annotated[SignInPerson | None, Depends(get_sign_in)]


@router.get("/start", name="sso_start")
def sso_start(request: Request, provider: Provider, next: str = "/") -> Response:
    """Send the browser to the provider's sign-in page."""
    state = {
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": generate_token(64),  # RFC 7636 4.1: 43-128 unreserved characters
        "next": next if _NEXT.fullmatch(next) else "/",
    }
    try:
        url = provider.authorization_url(
            _redirect_uri(request, provider), state["state"], state["nonce"], state["verifier"]
        )
    except SsoRefused as refused:
        return sso_refused(request, refused.reason)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        _seal_state(provider.settings, state),
        max_age=STATE_SECONDS,
        path="/sso",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on sub-requests
    )
    return response


@router.get("/callback", name="sso_callback")
def sso_callback(request: Request, provider: Provider, sign_in: SignIn) -> Response:
    """Back from the provider: check everything, then sign the linked person in."""
    q = request.query_params
    try:
        state = _open_state(provider.settings, request.cookies.get(STATE_COOKIE))
        if not hmac.compare_digest(q.get("state", "").encode(), state["state"].encode()):
            raise SsoRefused("state")
        if "error" in q or not q.get("code"):
            raise SsoRefused("provider-error")
        id_token = provider.exchange(q["code"], _redirect_uri(request, provider), state["verifier"])
        claims = provider.identity(id_token, state["nonce"])
        subject = claims.get(provider.settings.claim)
        if not isinstance(subject, str):
            raise SsoRefused("id-token-claims")
        person = resolve_oidc_person(request.app.state.ctx, provider.settings.issuer, subject)
        if person is None:
            raise SsoRefused("unknown-identity")
        if not _active(person):
            raise SsoRefused("person-inactive")
        if not oidc_link_logged(request.app.state.ctx, person):
            log.error("sso link of person:%s is not in its log", person.handle)
            raise SsoRefused("link-not-logged")
        if sign_in is None:
            raise SsoRefused("sessions-unavailable")
    except SsoRefused as refused:
        return sso_refused(request, refused.reason)
    response = RedirectResponse(state["next"], status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/sso")
    sign_in(request, response, person)
    log.info("sso sign-in person:%s", person.handle)
    return response


def sso_refused(request: Request, reason: str) -> Response:
    """The refusal page (the desk may replace it); the state cookie is spent either way."""
    log.warning("sso refused: %s", reason)
    status = 503 if reason in ("provider-unreachable", "sessions-unavailable") else 403
    response = HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Sign-in refused</title></head><body><main><h1>Sign-in refused</h1>"
        f"<p>Single sign-on did not sign you in (<code>{reason}</code>). "
        '<a href="/sso/start">Try again</a> or ask an admin.</p></main></body></html>',
        status_code=status,
    )
    response.delete_cookie(STATE_COOKIE, path="/sso")
    return response


def _redirect_uri(request: Request, provider: OpenIdProvider) -> str:
    return provider.settings.redirect_url or str(request.url_for("sso_callback"))
