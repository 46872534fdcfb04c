"""``GET /v1/access``: the access log (who read which household's data), newest first, searchable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from domain.bundle import ID_MAX_LENGTH, ID_PATTERN
from serving.audit_view import MAX_SEQ, SearchTime
from serving.auth import require
from serving.deps import AccessDep
from serving.schemas import ERRORS, AccessPage, Action, Role
from store.access import Caller

router = APIRouter(tags=["access"])


class AccessQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_id: str | None = Field(None, max_length=32, pattern=r"^k-[0-9a-f]{12}$", description="the caller's key id")
    role: Role | None = None
    target: str | None = Field(None, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN,
                               description="a household id or a request id")
    action: Action | None = None
    since: SearchTime | None = Field(None, description="at or after (ISO 8601; no offset: UTC)")
    until: SearchTime | None = Field(None, description="before (ISO 8601; no offset: UTC)")
    before_seq: int | None = Field(None, ge=1, le=MAX_SEQ, description="paging: next_before_seq of the last page")
    limit: int = Field(50, ge=1, le=1000)


@router.get("/v1/access", response_model=AccessPage, responses=ERRORS,
            summary="The access log: every read of personal data (who, when, what, which households), newest "
                    "first; search by caller, target, action and time")
def access_search(caller: Annotated[Caller, Depends(require("auditor"))], q: Annotated[AccessQuery, Query()],
                  log: AccessDep) -> dict[str, Any]:
    if caller.towns is not None:
        raise HTTPException(403, "the access log is for auditors whose key is not limited to towns")
    events = log.query(key_id=q.key_id, role=q.role, target=q.target, action=q.action, since=q.since,
                       until=q.until, before_seq=q.before_seq, limit=q.limit)
    # what the search was about, not every household the events name: those reads are logged already
    log.record("access_search", caller, households=[q.target] if q.target else [], count=len(events))
    return {"events": [e.as_dict() for e in events],
            "next_before_seq": events[-1].seq if len(events) == q.limit else None}
