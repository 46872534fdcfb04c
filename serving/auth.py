"""Bearer keys and roles: a missing or unknown key is 401, a known key with the wrong role 403."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


def _roles_of(request: Request, key: str) -> frozenset[str] | None:
    found = None
    for known, roles in request.app.state.keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = roles
    return found


def require(*roles: str) -> Callable[..., str]:
    """A dependency that admits keys holding any of ``roles`` and returns the role used."""

    async def dependency(request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                         ) -> str:
        if cred is None or cred.scheme.lower() != "bearer" or not cred.credentials:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key",
                                headers={"WWW-Authenticate": "Bearer"})
        have = _roles_of(request, cred.credentials)
        if have is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key",
                                headers={"WWW-Authenticate": "Bearer"})
        allowed = have & set(roles)
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this endpoint needs the role {' or '.join(roles)}")
        return sorted(allowed)[0]

    return dependency
