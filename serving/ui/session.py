"""Who is looking at a page: an auditor's session cookie, or a Bearer key as the API takes it.

Browsers cannot send Bearer headers, so ``/ui/login`` takes the key once and sets a cookie. The
cookie never holds the key: it is ``expires.nonce.mac`` with ``mac = HMAC-SHA256(key, expires.nonce)``,
checked against the same key table as the API (``app.state.keys``). So it works across workers and
restarts with no server-side state, it dies with its key (remove the key from
``RELIEF_RISK_API_KEYS`` and its sessions stop working), and it expires after ``SESSION_SECONDS``.
It is HttpOnly, SameSite=Strict (no cross-site request carries it: no CSRF), limited to ``/ui``
and Secure when the page is served over HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

from fastapi import Request, Response

from serving.auth import _roles_of

COOKIE = "relief_risk_ui"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 8 * 3600  # one working day
ROLE = "auditor"


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


def session_roles(keys: dict[str, frozenset[str]], token: str, now: float | None = None) -> frozenset[str] | None:
    """The roles of the key that signed ``token``, or None (malformed, expired, key withdrawn)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(token) > 200:
        return None
    expires, nonce, mac = parts
    if int(expires) < (now if now is not None else time.time()):
        return None
    found = None
    for key, roles in keys.items():  # every key is tried, so timing does not tell which one matched
        if hmac.compare_digest(mac, _mac(key, f"{expires}.{nonce}")):
            found = roles
    return found


def key_roles(request: Request, key: str) -> frozenset[str] | None:
    return _roles_of(request, key)


def safe_next(path: str | None) -> str:
    """Only a path of these pages: never another site (``//host``) or a scheme."""
    if not path or not path.startswith("/ui/") or path.startswith("//") or "\\" in path or len(path) > 512:
        return "/ui/audit"
    return path


def login_url(next_path: str) -> str:
    return "/ui/login?next=" + quote(safe_next(next_path), safe="/")


def require_auditor(request: Request) -> str:
    """The dependency of every UI page: returns ``auditor`` or raises :class:`NeedLogin` / :class:`Refused`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Refused(401, "无法识别的 Authorization 头（应为 Bearer 密钥）")
        roles = key_roles(request, key.strip())
        if roles is None:
            raise Refused(401, "未知的密钥 unknown key")
    else:
        token = request.cookies.get(COOKIE)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not token:
            raise NeedLogin(path)
        roles = session_roles(request.app.state.keys, token)
        if roles is None:  # expired or its key withdrawn: log in again
            raise NeedLogin(path)
    if ROLE not in roles:
        raise Refused(403, "此密钥没有审计员（auditor）角色 this key does not hold the auditor role")
    return ROLE


def set_session(response: Response, request: Request, key: str) -> None:
    response.set_cookie(COOKIE, issue(key), max_age=SESSION_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
