"""Raw values to the dtypes the feature code expects: frames read from files, rows of a bundle.

Strings and codes become Python strings (object dtype, ``pd.NA`` where missing), counts int64
(float64 where one is missing), money float64, dates ``datetime64[ns]``, and income months get
their integer ``month_index`` beside the ``'YYYY-MM'`` string. Nothing is checked beyond dtypes:
content checks belong to the boundary that received the data (``features.io.check_tables`` for
files, the API's request models for bundles).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.contract import OPTIONAL_COLUMNS, TABLE_COLUMNS, columns_of


def month_index(year: np.ndarray | int, month: np.ndarray | int) -> np.ndarray | int:
    """Months since year 0, so that month arithmetic is integer arithmetic."""
    return year * 12 + (month - 1)


def month_index_of(values: pd.Series) -> pd.Series:
    """``'YYYY-MM'`` strings to integer month indexes."""
    s = values.astype("string")
    year = pd.to_numeric(s.str.slice(0, 4), errors="coerce")
    month = pd.to_numeric(s.str.slice(5, 7), errors="coerce")
    # a malformed month becomes -1 here and is reported by ``features.io.check_tables``
    return (year * 12 + month - 1).fillna(-1).astype("int64")


def _objects(s: pd.Series) -> pd.Series:
    """``s.astype("string").astype(object)``: Python strings, ``pd.NA`` where missing.

    A column in pandas' string dtype (what parquet and CSV files give) is converted one distinct
    value at a time, so rows share their Python objects: 45 M income rows hold 1.3 M person ids,
    36 months and 7 sources, and an object per row would cost gigabytes.
    """
    if not len(s):
        return pd.Series([], dtype=object)
    if not isinstance(s.dtype, pd.StringDtype):
        return s.astype("string").astype(object)
    codes, uniques = pd.factorize(s)
    objects = np.append(uniques.astype(object), pd.NA)  # a missing value's code is -1: the last one
    return pd.Series(objects[codes], index=s.index, dtype=object)


def _month_indexes(months: pd.Series) -> pd.Series:
    """:func:`month_index_of`, worked out once per distinct month."""
    codes, uniques = pd.factorize(months)
    indexes = np.append(month_index_of(pd.Series(uniques, dtype=object)).to_numpy(), -1)
    return pd.Series(indexes[codes], index=months.index, dtype="int64")


def empty_table(name: str) -> pd.DataFrame:
    return normalise_table(name, pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]}))


def normalise_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Gives one raw table the dtypes the feature code expects; checks nothing beyond dtypes. The
    contract's columns, in its order, then the optional columns the frame has
    (:data:`features.contract.OPTIONAL_COLUMNS`); other columns are left out."""
    spec = columns_of(name, frame.columns)
    missing = [c for c in TABLE_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks columns {missing}")
    out = {}
    for col, kind in spec.items():
        s = frame[col]
        if kind in ("str", "cat", "month"):
            out[col] = _objects(s)
        elif kind in ("int", "money"):
            try:
                num = pd.to_numeric(s)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}.{col}: not a number ({exc})") from None
            # a missing count stays missing (float NaN) for the boundary check to report, not 0
            out[col] = num.astype("int64") if kind == "int" and not num.isna().any() else num.astype("float64")
        elif kind in ("date", "date_or_null"):
            out[col] = pd.to_datetime(s, format="%Y-%m-%d" if s.dtype == object else None).astype("datetime64[ns]")
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    if name == "income":
        result["month_index"] = _month_indexes(result["month"]) if len(result) else pd.Series([], dtype="int64")
    return result


# The fast path's dates stay inside datetime64[ns]'s range (1677-2262); others go through pandas.
_DAY = re.compile(r"(?:1[89]|2[01])\d\d-\d\d-\d\d")
_MONTH = re.compile(r"\d{4}-\d\d")


def _strings(values: list[Any]) -> np.ndarray | None:
    return np.array(values, dtype=object) if all(type(v) is str for v in values) else None


def _ints(values: list[Any]) -> np.ndarray | None:
    if not all(type(v) is int for v in values):
        return None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return None


def _money(values: list[Any]) -> np.ndarray | None:
    return np.array(values, dtype=np.float64) if all(type(v) is float or type(v) is int for v in values) else None


def _dates(values: list[Any]) -> np.ndarray | None:
    if not all(v is None or (type(v) is str and _DAY.fullmatch(v)) for v in values):
        return None
    try:
        days = np.array(["NaT" if v is None else v for v in values], dtype="datetime64[D]")
    except ValueError:  # not a calendar date: let pandas say so
        return None
    return days.astype("datetime64[ns]")


def _months(values: list[Any]) -> np.ndarray | None:
    return np.array(values, dtype=object) if all(type(v) is str and _MONTH.fullmatch(v) for v in values) else None


def _optional_strings(values: list[Any]) -> np.ndarray | None:
    """An optional column's strings, ``pd.NA`` where a row has none (as :func:`normalise_table` reads it)."""
    if not all(v is None or type(v) is str for v in values):
        return None
    return np.array([pd.NA if v is None else v for v in values], dtype=object)


_READERS = {"str": _strings, "cat": _strings, "int": _ints, "money": _money, "date": _dates,
            "date_or_null": _dates, "month": _months}
# Values a bundle's pydantic model has already held to the contract (``domain.bundle``): straight in.
_VALIDATED = {"str": object, "cat": object, "month": object, "int": np.int64, "money": np.float64,
              "date": "datetime64[D]", "date_or_null": "datetime64[D]"}
_EPOCH_MONTH = 1970 * 12


def arrays_from_rows(name: str, rows: Sequence[Mapping[str, Any]], fixed: Mapping[str, Any] | None = None,
                     given: Mapping[str, Sequence[Any]] | None = None, validated: bool = False
                     ) -> dict[str, np.ndarray]:
    """One table's rows (dicts) as normalised column arrays; ``fixed`` columns take one value for all,
    ``given`` columns take the values listed (one per row) instead of the rows' own.

    Values in the contract's own form go straight into arrays; a table holding anything else goes
    through :func:`normalise_table`, which gives the same values and raises the same errors.
    ``validated``: the rows come from bundles ``domain.bundle`` has validated (JSON strings, ints,
    numbers, ``YYYY-MM-DD`` dates or null): their values are not looked at again.
    """
    fixed = fixed or {}
    given = given or {}
    arrays: dict[str, np.ndarray] = {}
    optional = OPTIONAL_COLUMNS.get(name, {})
    spec = columns_of(name, [c for c in optional if c in fixed or c in given or any(c in r for r in rows)])
    for col, kind in spec.items():
        if col in given:
            values = list(given[col])
        else:
            values = [fixed[col]] * len(rows) if col in fixed else [r.get(col) for r in rows]
        if col in optional:
            array = _optional_strings(values)
        elif validated:
            array = np.array(values, dtype=_VALIDATED[kind])
            arrays[col] = array.astype("datetime64[ns]") if kind in ("date", "date_or_null") else array
            continue
        else:
            array = _READERS[kind](values)
        if array is None:
            frame = pd.DataFrame([{**{c: r.get(c) for c in spec}, **fixed} for r in rows], columns=list(spec))
            for c, v in given.items():
                frame[c] = pd.Series(list(v), dtype=object)
            normal = normalise_table(name, frame)
            return {c: normal[c].to_numpy() for c in normal.columns}
        arrays[col] = array
    if name == "income":
        if validated:  # YYYY-MM: numpy parses the months in one pass
            months = np.array(arrays["month"].tolist(), dtype="datetime64[M]").astype(np.int64) + _EPOCH_MONTH
            arrays["month_index"] = months
        else:
            arrays["month_index"] = np.array([int(m[:4]) * 12 + int(m[5:7]) - 1 for m in arrays["month"]],
                                             dtype=np.int64)
    return arrays
