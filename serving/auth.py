"""Bearer keys and roles: a missing or unknown key is 401, a known key with the wrong role 403.

A route's dependency returns the :class:`~store.access.Caller`: the role used, the key's
fingerprint (what audit records, feedback and the access log name; never the key) and the towns
the key is limited to (``RELIEF_RISK_API_KEYS`` items written ``role@town+town:key``)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.settings import Grant
from store.access import Caller

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def grant_of(keys: dict[str, Grant], key: str) -> Grant | None:
    """The key's grant; every known key is compared (in constant time), so timing tells nothing."""
    found = None
    encoded = key.encode("utf-8", "surrogatepass")
    for known, grant in keys.items():
        if hmac.compare_digest(known.encode(), encoded):
            found = grant
    return found


def caller_of(grant: Grant, roles: tuple[str, ...]) -> Caller | None:
    """The caller a grant is for a route admitting ``roles``; None when it holds none of them."""
    allowed = grant.roles & set(roles)
    if not allowed:
        return None
    return Caller(sorted(allowed)[0], grant.key_id, grant.towns)


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency that admits keys holding any of ``roles`` and returns the :class:`Caller`."""

    async def dependency(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                         ) -> Caller:
        if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key",
                                headers={"WWW-Authenticate": "Bearer"})
        grant = grant_of(request.app.state.keys, cred.credentials)
        if grant is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key",
                                headers={"WWW-Authenticate": "Bearer"})
        caller = caller_of(grant, roles)
        if caller is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the role {' or '.join(roles)}")
        window = request.app.state.key_window
        if window is not None and (wait := window.take(grant.key_id)) is not None:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"this key's request rate is limited; retry in "
                                f"{wait} s", headers={"Retry-After": str(wait)})
        return caller

    return dependency
