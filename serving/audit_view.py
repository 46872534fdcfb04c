"""How audit records are shown to auditors: the search parameters, a summary row, the full
record and the CSV export. Kept apart from the store (what is kept) and the routes (who may see)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from domain.bundle import ID_MAX_LENGTH, ID_PATTERN
from features.cells import neutralise
from serving.schemas import MODEL_NAME_PATTERN, MODEL_VERSION_PATTERN
from store.audit import AuditRecord

MAX_SEQ = 2**63 - 1  # the largest seq the store's column holds (BIGINT; SQLite's INTEGER)
YEARS = (1900, 2100)  # as every date the service takes


def _within_years(value: dt.datetime) -> dt.datetime:
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"must fall between the years {YEARS[0]} and {YEARS[1]}")
    return value


# a time a search compares with stored ones: any zone (none: UTC), in years the store can shift to UTC
SearchTime = Annotated[dt.datetime, AfterValidator(_within_years)]


class AuditQuery(BaseModel):
    """The search's parameters, each checked before anything reaches the store: a value the store
    could not hold or compare (an integer past 64 bits, a NUL, a year 1 that UTC cannot shift) is a
    422 naming the parameter."""

    model_config = ConfigDict(extra="forbid")
    household_id: str | None = Field(None, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    since: SearchTime | None = Field(None, description="created at or after (ISO 8601)")
    until: SearchTime | None = Field(None, description="created before (ISO 8601)")
    model_name: str | None = Field(None, pattern=MODEL_NAME_PATTERN)
    model_version: str | None = Field(None, pattern=MODEL_VERSION_PATTERN)
    flagged: bool | None = None
    before_seq: int | None = Field(None, ge=1, le=MAX_SEQ,
                                   description="paging: the next_before_seq of the previous page")
    limit: int = Field(50, ge=1, le=1000)
    format: Literal["json", "csv"] = "json"


class AuditSummary(BaseModel):
    seq: int
    request_id: str
    created_at: str
    kind: str
    household_id: str
    as_of: str
    models: str
    flagged: bool
    scores: dict[str, dict[str, Any]]
    caller: dict[str, str] | None = Field(description="who asked: {role, key_id}; null on records from before "
                                                      "callers were kept")
    purged_at: str | None = Field(description="when the record's payload (bundle, scores, response) was purged "
                                              "past the retention period; null while kept")


class AuditPage(BaseModel):
    records: list[AuditSummary]
    next_before_seq: int | None


def audit_summary(r: AuditRecord) -> dict[str, Any]:
    return {"seq": r.seq, "request_id": r.request_id, "created_at": r.created_at.isoformat(), "kind": r.kind,
            "household_id": r.household_id, "as_of": r.as_of,
            "models": ",".join(f"{m['name']}:{m['version']}" for m in r.models), "flagged": r.flagged,
            "scores": {s["risk"]: {"probability": s["probability"], "band": s["band"], "flagged": s["flagged"]}
                       for s in r.scores},
            "caller": r.caller, "purged_at": _time(r.purged_at)}


def _time(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def audit_detail(r: AuditRecord) -> dict[str, Any]:
    return {"request_id": r.request_id, "seq": r.seq, "created_at": r.created_at.isoformat(), "kind": r.kind,
            "household_id": r.household_id, "as_of": r.as_of, "models": r.models, "caller": r.caller,
            "town": r.town, "purged_at": _time(r.purged_at),
            "request": None if r.purged_at else r.request, "scores": None if r.purged_at else r.scores,
            "response": None if r.purged_at else r.response, "prev_hash": r.prev_hash, "record_hash": r.record_hash}


SUMMARY_COLUMNS = ("seq", "request_id", "created_at", "kind", "household_id", "as_of", "models", "flagged")


def summaries_csv(rows: list[dict[str, Any]]) -> str:
    """The summaries as CSV; a text cell that a spreadsheet would compute is written as text
    (:func:`features.cells.neutralise`)."""
    risks = sorted({risk for row in rows for risk in row["scores"]})
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([neutralise(h) for h in [*SUMMARY_COLUMNS, "caller_role", "caller_key_id", "purged_at",
                                        *[f"{r}_{k}" for r in risks for k in ("probability", "band", "flagged")]]])
    for row in rows:
        caller = row.get("caller") or {}
        w.writerow([neutralise(v) for v in [row[k] for k in SUMMARY_COLUMNS]
                    + [caller.get("role", ""), caller.get("key_id", ""), row.get("purged_at") or ""]]
                   + [row["scores"].get(r, {}).get(k, "") for r in risks for k in ("probability", "band", "flagged")])
    return out.getvalue()
