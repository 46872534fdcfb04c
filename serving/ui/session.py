"""Who is looking at a page: an auditor's session cookie, or a Bearer key as the API takes it.

Browsers cannot send Bearer headers, so ``/ui/login`` takes the key once and sets a cookie. The
cookie never holds the key: it is ``expires.nonce.mac`` with ``mac = HMAC-SHA256(key, expires.nonce)``,
checked against the same key table as the API (``app.state.keys``). So it works across workers and
restarts, it dies with its key (remove the key from ``RELIEF_RISK_API_KEYS`` and its sessions stop
working), and it expires after ``SESSION_SECONDS``. Signing out revokes it on the server too: its
hash goes into the store's ``revoked_sessions`` (shared by every worker) until it would have expired,
so a copied cookie is dead after sign-out. It is HttpOnly, SameSite=Strict (no cross-site request
carries it: no CSRF), limited to ``/ui``, and Secure over HTTPS or always with
``RELIEF_RISK_SECURE_COOKIES=true`` (behind a proxy that ends TLS).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import quote

from fastapi import Request, Response
from sqlalchemy.engine import Engine

from serving.auth import caller_of, grant_of
from serving.settings import Grant
from store import sessions
from store.access import Caller

COOKIE = "relief_risk_ui"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600  # one working day
ROLE = "auditor"
_TOKEN = re.compile(r"^([0-9]{1,12})\.([A-Za-z0-9_\-]{1,64})\.([0-9a-f]{64})$")


class NeedLogin(Exception):
    """No credentials: the browser is sent to the login page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Refused(Exception):
    """Credentials that do not admit this page: 401 (unknown key) or 403 (not an auditor)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _mac(key: str, payload: str) -> str:
    return hmac.new(key.encode(), b"relief-risk-ui-session:" + payload.encode(), hashlib.sha256).hexdigest()


def issue(key: str, now: float | None = None) -> str:
    payload = f"{int(now if now is not None else time.time()) + SESSION_SECONDS}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(key, payload)}"


def _parse(token: str) -> re.Match[str] | None:
    """``expires.nonce.mac`` with an expiry in ASCII digits, or None."""
    return _TOKEN.match(token) if len(token) <= 200 else None


def session_grant(keys: dict[str, Grant], token: str, now: float | None = None) -> Grant | None:
    """The grant of the key that signed ``token``, or None (malformed, expired, key withdrawn). Only
    ASCII digits are an expiry (``str.isdigit`` would take ``²``, which ``int`` refuses)."""
    m = _parse(token)
    if m is None:
        return None
    expires, nonce, mac = m.groups()
    if int(expires) < (now if now is not None else time.time()):
        return None
    found = None
    for key, grant in keys.items():  # every key is tried, so timing does not tell which one matched
        if hmac.compare_digest(mac, _mac(key, f"{expires}.{nonce}")):
            found = grant
    return found


def session_hash(token: str) -> str:
    return hashlib.sha256(b"relief-risk-ui-session:" + token.encode("utf-8", "surrogatepass")).hexdigest()


def revoke(engine: Engine, token: str) -> None:
    """Ends a session on the server (:mod:`store.sessions`) until it would have expired."""
    m = _parse(token)
    if m is not None:
        sessions.revoke(engine, session_hash(token), dt.datetime.fromtimestamp(min(int(m.group(1)), 2**40), dt.UTC))


def revoked(engine: Engine, token: str) -> bool:
    return sessions.is_revoked(engine, session_hash(token))


def key_grant(request: Request, key: str) -> Grant | None:
    return grant_of(request.app.state.keys, key)


def safe_next(path: str | None) -> str:
    """Only a path of these pages: never another site (``//host``) or a scheme."""
    if not path or not path.startswith("/ui/") or path.startswith("//") or "\\" in path or len(path) > 512 \
            or not path.isprintable():
        return "/ui/audit"
    return path


def login_url(next_path: str) -> str:
    return "/ui/login?next=" + quote(safe_next(next_path), safe="/")


def require_auditor(request: Request) -> Caller:
    """The dependency of every UI page: the auditor :class:`Caller`, or raises :class:`NeedLogin` /
    :class:`Refused`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Refused(401, "无法识别的 Authorization 头（应为 Bearer 密钥）")
        grant = key_grant(request, key.strip())
        if grant is None:
            raise Refused(401, "未知的密钥 unknown key")
    else:
        token = request.cookies.get(COOKIE)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not token:
            raise NeedLogin(path)
        grant = session_grant(request.app.state.keys, token)
        if grant is None or revoked(request.app.state.audit.engine, token):  # expired, withdrawn, signed out
            raise NeedLogin(path)
    caller = caller_of(grant, (ROLE,))
    if caller is None:
        raise Refused(403, "此密钥没有审计员（auditor）角色 this key does not hold the auditor role")
    return caller


def _secure(request: Request) -> bool:
    return bool(getattr(request.app.state, "secure_cookies", False)) or request.url.scheme == "https"


def set_session(response: Response, request: Request, key: str) -> None:
    response.set_cookie(COOKIE, issue(key), max_age=SESSION_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=_secure(request))


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request))
