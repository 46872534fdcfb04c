"""``GET /v1/audit`` (search and CSV export) and ``GET /v1/audit/{request_id}`` (the full record).
Every answer is a read of personal data: it is written to the access log before it is returned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from serving.audit_view import AuditPage, AuditQuery, audit_detail, audit_summary, summaries_csv
from serving.auth import require
from serving.deps import AccessDep, AuditDep
from serving.schemas import ERRORS, NOT_FOUND, is_request_id
from store.access import Caller

router = APIRouter(tags=["audit"])
Auditor = Annotated[Caller, Depends(require("auditor"))]


@router.get("/v1/audit", responses={**ERRORS, 200: {"content": {"text/csv": {}}}}, response_model=AuditPage,
            summary="Search audit records, newest first; `format=csv` exports them as CSV")
def audit_search(caller: Auditor, q: Annotated[AuditQuery, Query()], store: AuditDep, access: AccessDep) -> Any:
    records = store.query(household_id=q.household_id, since=q.since, until=q.until, model_name=q.model_name,
                          model_version=q.model_version, flagged=q.flagged, before_seq=q.before_seq, limit=q.limit,
                          towns=caller.towns)
    rows = [audit_summary(r) for r in records]
    access.record("audit_export" if q.format == "csv" else "audit_search", caller,
                  households=[r.household_id for r in records], requests=[r.request_id for r in records])
    if q.format == "csv":
        return Response(summaries_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
    next_seq = records[-1].seq if len(records) == q.limit else None
    return {"records": rows, "next_before_seq": next_seq}


@router.get("/v1/audit/{request_id}", responses=NOT_FOUND,
            summary="What was received, who asked, the model versions, full contributions and the response as "
                    "returned")
def audit(request_id: str, caller: Auditor, store: AuditDep, access: AccessDep) -> dict[str, Any]:
    if not is_request_id(request_id):  # no id of ours: no record, and nothing of it reaches the store
        raise HTTPException(404, "no audit record with this request_id")
    rec = store.get(request_id)
    if rec is None or not caller.may_see(rec.town):
        raise HTTPException(404, "no audit record with this request_id")
    access.record("audit_record", caller, households=[rec.household_id], requests=[rec.request_id])
    return audit_detail(rec)
