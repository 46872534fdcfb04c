"""The worklist as one Excel workbook: a summary sheet, then a sheet per town, each headed by the
note that a score only helps choose whom to visit.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from features.cells import excel_value
from features.risks import risk_label

NOTE = "评分仅用于辅助确定走访对象，不作为拒绝救助的依据。"
SUMMARY_SHEET = "汇总"


def sheet_name(town: str, names: Mapping[str, str], taken: set[str]) -> str:
    """``杨舍 yangshe``: the town's Chinese name and code, as Excel allows a sheet name (at most 31
    characters, none of ``[]:*?/\\`` nor a control character, no ``'`` first or last), numbered when it
    would repeat one in ``taken`` (then added)."""
    text = "".join(ch for ch in f"{names.get(town, town)} {town}"
                   if ch not in "[]:*?/\\" and unicodedata.category(ch)[0] != "C")
    base = text.strip("' ")[:31].rstrip("' ") or "town"
    name, k = base, 2
    while name in taken or name == SUMMARY_SHEET:
        suffix = f" {k}"
        name, k = base[:31 - len(suffix)] + suffix, k + 1
    taken.add(name)
    return name


def write_workbook(path: Path, sheets: Mapping[str, pd.DataFrame], overview: pd.DataFrame, as_of: str,
                   models: Sequence[Mapping[str, str]], names: Mapping[str, str], columns: Mapping[str, float],
                   wrapped: Collection[str]) -> None:
    """Writes ``path``: a 汇总 sheet (the note, the date and models, ``overview``), then a sheet per
    town (``sheets``, named by :func:`sheet_name`) headed by the note. ``columns``: the towns'
    columns' widths (characters); ``wrapped``: the columns whose text wraps. Every cell from the
    data goes through :func:`features.cells.excel_value`: text that Excel would run as a formula
    (openpyxl writes any text that begins with ``=`` as one) is written as text."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    wrap, top = Alignment(wrap_text=True, vertical="top"), Alignment(vertical="top")
    note_font = Font(bold=True, color="C00000")

    def table(ws: Any, frame: pd.DataFrame, widths: Mapping[str, float], first_row: int) -> None:
        for j, column in enumerate(frame.columns, start=1):
            cell = ws.cell(row=first_row, column=j, value=excel_value(column))
            cell.font, cell.fill, cell.alignment = bold, fill, wrap
            ws.column_dimensions[get_column_letter(j)].width = widths.get(column, max(10, 2 * len(column) + 2))
        for i, values in enumerate(frame.itertuples(index=False), start=first_row + 1):
            for j, (column, value) in enumerate(zip(frame.columns, values, strict=True), start=1):
                cell = ws.cell(row=i, column=j, value=excel_value(value))
                cell.alignment = wrap if column in wrapped else top
        ws.freeze_panes = ws.cell(row=first_row + 1, column=1)

    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    ws.cell(row=1, column=1, value=NOTE).font = note_font
    ws.cell(row=2, column=1, value=f"评分日期：{as_of}；模型：" + "、".join(
        f"{risk_label(m['risk'])} v{m['version']}" for m in models)
        + f"；生成时间：{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    table(ws, overview, {"镇（街道）": 18}, first_row=4)
    taken: set[str] = set()
    for town, frame in sheets.items():
        ws = wb.create_sheet(sheet_name(town, names, taken))
        ws.cell(row=1, column=1, value=NOTE).font = note_font
        table(ws, frame, columns, first_row=2)
    wb.save(path)
