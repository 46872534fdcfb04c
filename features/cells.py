"""Text from the data made safe to write into a spreadsheet cell or a file name: the one place every
CSV and Excel writer of the project (the worklist, the audit export, training's evidence tables)
takes it from. Pure; the lowest layer, so the batch, training and serving can all import it.

A cell whose text begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel
(and LibreOffice) as a formula: a household id or a town name from the input tables could run a
command or send the sheet elsewhere when a caseworker opens the worklist (CSV injection, CWE-1236).
:func:`neutralise` prefixes such text with ``'``, as OWASP advises: the cell shows the text, with
the quote, and computes nothing. Numbers stay numbers (``-3.5`` as a number is not text).

:func:`safe_file_name` turns data (a town code) into one file name: no path separators, no ``..``,
no control or invisible formatting characters, none of the characters Windows reserves, no device
name, bounded in bytes; letters of any script, Chinese town names too, stay as they are.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# characters an XLSX file (XML 1.0) cannot hold at all: openpyxl refuses them
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_RESERVED = frozenset('<>:"/\\|?*')
_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                      *(f"LPT{i}" for i in range(1, 10))})
MAX_NAME_BYTES = 120  # file systems allow 255 bytes a name; leaves room for a prefix and a suffix


def neutralise(value: Any) -> Any:
    """``value`` as a cell that computes nothing: text that a spreadsheet would take for a formula
    gets a leading ``'``; anything else (numbers, dates, None, safe text) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def excel_value(value: Any) -> Any:
    """:func:`neutralise`, and each character an XLSX cannot hold (C0 controls other than tab, line
    feed and carriage return) shown as U+FFFD, where openpyxl would refuse the whole workbook."""
    value = neutralise(value)
    if isinstance(value, str) and _NOT_IN_XML.search(value):
        return _NOT_IN_XML.sub("\ufffd", value)
    return value


def neutralise_frame(frame: pd.DataFrame, *, index: bool = False) -> pd.DataFrame:
    """``frame`` with every text cell (and column name; the index too when ``index``) neutralised; numeric
    columns untouched. The frame itself is not changed; it is returned as it is when nothing needs it."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            fixed = values.map(neutralise)
            if not fixed.equals(values):
                out = out.copy() if out is frame else out
                out[column] = fixed
    names = [neutralise(c) for c in frame.columns]
    if names != list(frame.columns):
        out = out.copy() if out is frame else out
        out.columns = names
    if index and (frame.index.dtype == object or pd.api.types.is_string_dtype(frame.index.dtype)):
        fixed_index = frame.index.map(neutralise)
        if not fixed_index.equals(frame.index):
            out = out.copy() if out is frame else out
            out.index = fixed_index
    return out


def safe_file_name(text: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One file name made of ``text``: each path separator, reserved (``<>:"/\\|?*``), control,
    formatting (such as a right-to-left override) or unassigned character becomes ``_``, so does a
    run of dots and a leading ``-``; no leading or trailing dot or space; a Windows device name
    (``CON``, ``NUL``, ``COM1`` …) gets a leading ``_``; at most ``max_bytes`` bytes of UTF-8, cut
    between characters. Never empty (``_``)."""
    chars = []
    for ch in unicodedata.normalize("NFC", str(text)):
        if ch in _RESERVED or unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            ch = "_"
        chars.append(ch)
    name = re.sub(r"\.{2,}", "_", "".join(chars)).strip(" .")
    if name.startswith("-"):
        name = "_" + name[1:]
    if name.split(".", 1)[0].upper() in _DEVICES:
        name = "_" + name
    name = name.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore").rstrip(" .")
    return name or "_"


def unique_file_name(text: str, taken: set[str], max_bytes: int = MAX_NAME_BYTES) -> str:
    """:func:`safe_file_name`, numbered (``name_2``) when two pieces of data clean to the same name
    (``a/b`` and ``a_b``); compared without case, as Windows and macOS compare names. ``taken``: the
    names given so far, case-folded; the new one is added."""
    base = safe_file_name(text, max_bytes - 8)
    name, k = base, 2
    while name.casefold() in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name.casefold())
    return name
