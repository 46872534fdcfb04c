"""The audit search form: what an auditor typed, checked, turned into a store query and back into
links (next page, CSV export) that keep the same filters.

Dates are calendar days in Beijing time, both ends included: ``from 2026-06-01 to 2026-06-30``
means records created from 2026-06-01 00:00 to 2026-07-01 00:00 (UTC+8); the store compares UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from domain.bundle import ID_MAX_LENGTH, ID_PATTERN
from serving.audit_view import MAX_SEQ
from serving.schemas import MODEL_NAME_PATTERN, MODEL_VERSION_PATTERN
from serving.ui.case import BEIJING

PAGE_SIZES = (20, 50, 100, 200)
CSV_LIMIT = 1000  # the API's largest page
# the API's own patterns (GET /v1/audit): what one form accepts, the other does
_ID = re.compile(ID_PATTERN)
_VERSION = re.compile(MODEL_VERSION_PATTERN)
_MODEL = re.compile(MODEL_NAME_PATTERN)


@dataclass
class SearchForm:
    household_id: str = ""
    date_from: str = ""
    date_to: str = ""
    model_name: str = ""
    model_version: str = ""
    flagged: str = ""        # "" any, "true", "false"
    limit: int = 50
    before_seq: int | None = None
    errors: list[str] = field(default_factory=list)

    def filters(self) -> dict[str, str]:
        """The form's filters as query parameters (empty ones left out)."""
        out = {"household_id": self.household_id, "date_from": self.date_from, "date_to": self.date_to,
               "model_name": self.model_name, "model_version": self.model_version, "flagged": self.flagged}
        return {k: v for k, v in out.items() if v}

    def query_kwargs(self) -> dict[str, Any]:
        """Arguments for :meth:`store.audit.AuditStore.query` (without paging)."""
        since = until = None
        if self.date_from:
            since = dt.datetime.combine(dt.date.fromisoformat(self.date_from), dt.time(), BEIJING).astimezone(dt.UTC)
        if self.date_to:
            until = dt.datetime.combine(dt.date.fromisoformat(self.date_to) + dt.timedelta(days=1), dt.time(),
                                        BEIJING).astimezone(dt.UTC)
        return {"household_id": self.household_id or None, "since": since, "until": until,
                "model_name": self.model_name or None, "model_version": self.model_version or None,
                "flagged": {"true": True, "false": False}.get(self.flagged)}

    def page_url(self, before_seq: int | None = None) -> str:
        params: dict[str, Any] = {**self.filters(), "limit": self.limit}
        if before_seq is not None:
            params["before_seq"] = before_seq
        return "/ui/audit?" + urlencode(params)

    def csv_url(self) -> str:
        return "/ui/audit.csv?" + urlencode({**self.filters(), "limit": CSV_LIMIT})

    def api_csv_params(self) -> dict[str, Any]:
        """The same search as parameters of the API's ``GET /v1/audit?format=csv``."""
        kw = self.query_kwargs()
        params = {k: (v.isoformat() if isinstance(v, dt.datetime) else str(v).lower() if isinstance(v, bool) else v)
                  for k, v in kw.items() if v is not None}
        return {**params, "limit": CSV_LIMIT, "format": "csv"}


def _date(value: str, what: str, errors: list[str]) -> str:
    if not value:
        return ""
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{what}不是有效日期（YYYY-MM-DD）：{value[:20]}")
        return ""
    if not 1900 <= d.year <= 2100:
        errors.append(f"{what}应在 1900 至 2100 年之间")
        return ""
    return d.isoformat()


def _whole_number(value: str) -> int | None:
    """``value`` as a whole number written in ASCII digits, or None. ``str.isdigit`` is also true of
    ``²`` (which ``int`` refuses) and of ``١٢`` or ``１２`` (which ``int`` reads as 12): neither is a
    number this form was sent."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else None


def parse_form(params: dict[str, str], max_limit: int = max(PAGE_SIZES)) -> SearchForm:
    """Checks every field; a bad one is dropped and named in ``errors`` (the page shows them)."""
    errors: list[str] = []
    f = SearchForm(errors=errors)
    hid = params.get("household_id", "").strip()
    if hid and not (len(hid) <= ID_MAX_LENGTH and _ID.fullmatch(hid)):
        errors.append("户编号只能包含字母、数字和 _ . : -，最长 64 个字符")
    else:
        f.household_id = hid
    f.date_from = _date(params.get("date_from", "").strip(), "起始日期", errors)
    f.date_to = _date(params.get("date_to", "").strip(), "截止日期", errors)
    if f.date_from and f.date_to and f.date_to < f.date_from:
        errors.append("截止日期早于起始日期")
    name, version = params.get("model_name", "").strip(), params.get("model_version", "").strip()
    if name and not _MODEL.fullmatch(name):
        errors.append("模型名称格式不对")
    else:
        f.model_name = name
    if version and not _VERSION.fullmatch(version):
        errors.append("模型版本格式不对")
    else:
        f.model_version = version
    flagged = params.get("flagged", "")
    if flagged in ("", "true", "false"):
        f.flagged = flagged
    else:
        errors.append("是否建议走访（flagged）只能是 true 或 false")
    f.limit = _bounded(params, "limit", "每页条数", max_limit, errors) or f.limit
    f.before_seq = _bounded(params, "before_seq", "翻页位置", MAX_SEQ, errors)
    return f


def _bounded(params: dict[str, str], name: str, label: str, most: int, errors: list[str]) -> int | None:
    """The parameter as a whole number from 1 to ``most`` in ASCII digits; None when absent or bad
    (a bad one is named in ``errors``)."""
    text = params.get(name, "").strip()
    if not text:
        return None
    n = _whole_number(text)
    if n is None or not 1 <= n <= most:
        errors.append(f"{label}（{name}）应为 1 至 {most} 的整数（半角数字）")
        return None
    return n
