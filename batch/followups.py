"""Follow-ups past due (逾期帮扶措施) for the nightly worklist: the plan measures (一户一策) not yet final
whose due date is before the worklist's as_of, per town, read from the store the batch keeps its
runs in. Written as ``overdue_followups.csv`` (UTF-8 with BOM) and as a sheet of ``worklist.xlsx``,
with Chinese headers; every text cell neutralised as the worklist's are (:mod:`features.cells`).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from domain.plans import FINAL, STATUS_LABELS
from features.cells import excel_value, neutralise_frame
from features.labels import TOWNS
from policy.warm import MeasureBook
from store.plans import PlanStore

log = logging.getLogger(__name__)

SHEET = "逾期帮扶措施"
CSV_NAME = "overdue_followups.csv"
COLUMNS: dict[str, float] = {  # Chinese headers and Excel column widths (characters)
    "镇（街道）": 14, "户编号": 14, "措施": 24, "责任部门": 10, "到期日": 12, "逾期天数": 10, "当前状态": 10,
    "最近进展（日期、记录人、说明）": 48, "措施编号": 34,
}


def overdue_frame(store: PlanStore, as_of: dt.date, book: MeasureBook) -> pd.DataFrame:
    """One row per overdue measure, by town, then due date (oldest first)."""
    rows = []
    for m in store.overdue(as_of, FINAL):
        spec = book.latest(m.measure)
        last = m.events[-1] if m.events else None
        progress = f"{last.happened_on} {last.actor}" + (f"：{last.note}" if last.note else "") if last else ""
        rows.append({
            "镇（街道）": TOWNS.get(m.town or "", m.town or "未记录"), "户编号": m.household_id,
            "措施": spec.label_zh if spec else m.measure, "责任部门": book.department_label(m.owner),
            "到期日": m.due, "逾期天数": (as_of - dt.date.fromisoformat(m.due)).days,
            "当前状态": STATUS_LABELS.get(m.status or "", m.status or ""),
            "最近进展（日期、记录人、说明）": progress,
            "措施编号": m.measure_id})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_followups(out_dir: Path, excel: Path, as_of: str, record_url: str | None,
                    book: MeasureBook) -> Path | None:
    """Writes ``overdue_followups.csv`` into ``out_dir`` and the 逾期帮扶措施 sheet into ``excel``;
    the CSV's path, or None (and a log line saying so) when no store was given."""
    if not record_url:
        log.warning("no store given (--record-url or RELIEF_RISK_AUDIT_URL): overdue plan measures not listed")
        return None
    from store.audit import AuditStore

    audit = AuditStore(record_url)
    try:
        frame = overdue_frame(PlanStore(audit.engine), dt.date.fromisoformat(as_of), book)
    finally:
        audit.dispose()
    path = out_dir / CSV_NAME
    neutralise_frame(frame).to_csv(path, index=False, encoding="utf-8-sig")
    _add_sheet(excel, frame, as_of)
    log.info("overdue plan measures as of %s: %d", as_of, len(frame))
    return path


def _add_sheet(excel: Path, frame: pd.DataFrame, as_of: str) -> None:
    from openpyxl import load_workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = load_workbook(excel)
    ws = wb.create_sheet(SHEET)
    title = f"截至 {as_of} 已过到期日、尚未落实、拒绝或取消的帮扶措施（按镇街、到期日排列）"
    ws.cell(row=1, column=1, value=title).font = Font(bold=True)
    for j, column in enumerate(frame.columns, start=1):
        ws.cell(row=2, column=j, value=excel_value(column)).font = Font(bold=True)
        ws.column_dimensions[get_column_letter(j)].width = COLUMNS[column]
    for i, values in enumerate(frame.itertuples(index=False), start=3):
        for j, value in enumerate(values, start=1):
            ws.cell(row=i, column=j, value=excel_value(value)).alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A3"
    wb.save(excel)
