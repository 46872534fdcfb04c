"""The columns :mod:`features.city` keeps, and the arrow helpers that read and sort them.

A string column is :class:`Coded` (integer codes into its distinct values), but for the keys of
:data:`KEY_STRINGS`, kept as arrow strings; counts, money and dates are numpy arrays with the dtypes
of :func:`features.normalise.normalise_table`. Private to ``features.city``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.contract import columns_of
from features.io import read_frame
from features.normalise import normalise_table

STRING_KINDS = frozenset({"str", "cat", "month"})

# Strings that only serve as keys, read as plain arrow strings: the ids (compact in arrow, turned into
# Python strings for the rows a chunk takes) and the person of each income and claim row (looked up
# among the persons, then dropped: a chunk derives it from the person's position). Parquet's
# dictionaries do not help those: a row group of claims names most of the city's persons. Every
# other string column is coded.
KEY_STRINGS = frozenset({("households", "household_id"), ("persons", "person_id"), ("claims", "claim_id"),
                         ("income", "person_id"), ("claims", "person_id")})


class Coded:
    """A string column as integer codes into its distinct values; the last value is ``pd.NA``
    (missing). ``values`` are Python strings, made once per distinct value and shared by the rows."""

    def __init__(self, codes: np.ndarray, values: np.ndarray | None = None, dictionary: pa.Array | None = None):
        self.codes = codes
        self._values = values
        self.dictionary = dictionary  # the distinct strings but the missing one, in arrow (for lookups)
        self._counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def of(cls, objects: np.ndarray) -> Coded:
        """From an object array of strings (missing as None, NaN or ``pd.NA``)."""
        codes, uniques = pd.factorize(pd.Series(objects, dtype=object), use_na_sentinel=True)
        values = np.append(np.asarray(uniques, dtype=object), pd.NA)
        return cls(_small(np.where(codes < 0, len(values) - 1, codes)), values)

    @classmethod
    def from_arrow(cls, column: pa.ChunkedArray) -> Coded:
        """From an arrow string column, dictionary-encoded or not."""
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        chunks = column.unify_dictionaries().chunks
        if not chunks:
            return cls(np.zeros(0, np.int8), np.array([pd.NA], dtype=object))
        dictionary = chunks[0].dictionary
        missing = len(dictionary)
        codes = np.concatenate([(pc.fill_null(c.indices, missing) if c.null_count else c.indices).to_numpy()
                                for c in chunks])
        return cls(_small(codes), dictionary=dictionary)

    @property
    def values(self) -> np.ndarray:
        if self._values is None:
            self._values = np.append(self.dictionary.to_numpy(zero_copy_only=False).astype(object), pd.NA)
        return self._values

    def arrow_values(self) -> pa.Array:
        """The distinct values but the missing one, as arrow strings."""
        if self.dictionary is None:
            self.dictionary = pa.array(self.values[:-1], type=pa.large_string(), from_pandas=True)
        return self.dictionary

    def rows(self, rows: slice | np.ndarray) -> np.ndarray:
        return self.values[self.codes[rows]]

    def reorder(self, order: np.ndarray | None) -> Coded:
        return self if order is None else Coded(self.codes[order], self._values, self.dictionary)

    def counts(self) -> np.ndarray:
        """Rows per distinct value (missing last)."""
        if self._counts is None:
            self._counts = np.bincount(self.codes, minlength=len(self.values))
        return self._counts


Column = Union[np.ndarray, Coded, pa.ChunkedArray]  # noqa: UP007 - a runtime alias


def _small(codes: np.ndarray) -> np.ndarray:
    top = int(codes.max()) if len(codes) else 0
    for dtype in (np.int8, np.int16, np.int32):
        if top <= np.iinfo(dtype).max:
            return codes.astype(dtype, copy=False)
    return codes.astype(np.int64, copy=False)


def _rows_of(column: Column, rows: slice | np.ndarray) -> np.ndarray:
    if isinstance(column, Coded):
        return column.rows(rows)
    if isinstance(column, pa.ChunkedArray):
        part = (column.slice(rows.start, rows.stop - rows.start) if isinstance(rows, slice)
                else column.take(pa.array(rows)))
        out = part.to_numpy(zero_copy_only=False).astype(object, copy=False)
        if part.null_count:
            out[pd.isna(out)] = pd.NA
        return out
    return column[rows]


def _reorder(column: Column, order: np.ndarray | None) -> Column:
    if order is None:
        return column
    if isinstance(column, Coded):
        return column.reorder(order)
    if isinstance(column, pa.ChunkedArray):
        return column.take(pa.array(order))
    return column[order]


def _arrow_strings(column: Column) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, Coded):
        return column.arrow_values().take(pa.array(np.where(column.codes == len(column.values) - 1, None,
                                                            column.codes), type=pa.int64(), from_pandas=True))
    return pa.array(np.asarray(column, dtype=object), type=pa.large_string(), from_pandas=True)


def _objects(column: Column) -> np.ndarray:
    if isinstance(column, Coded):
        return column.rows(slice(None))
    if isinstance(column, pa.ChunkedArray):
        return _rows_of(column, slice(0, len(column)))
    return np.asarray(column, dtype=object)


def _lookup(column: Column, keys: pa.Array) -> np.ndarray:
    """Position of each row's value among ``keys`` (the first of equal keys), -1 where it is not
    there or missing; int32, looked up once per distinct value of a coded column."""
    if isinstance(column, Coded):
        found = pc.fill_null(pc.index_in(column.arrow_values(), value_set=keys), -1).to_numpy()
        return np.append(found, -1).astype(np.int32)[column.codes]
    found = pc.index_in(column if isinstance(column, pa.ChunkedArray) else _arrow_strings(column), value_set=keys)
    return pc.fill_null(found, -1).to_numpy().astype(np.int32)


def _order_by(hh: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The rows of known households (code ≥ 0) in household order, keeping their order within a
    household; None when that is all rows as they are. Also the sorted codes."""
    if len(hh) == 0 or (hh.min() >= 0 and bool((hh[1:] >= hh[:-1]).all())):
        return None, hh
    keep = np.flatnonzero(hh >= 0)
    order = keep[np.argsort(hh[keep], kind="stable")]
    return order, hh[order]


def _offsets(hh_sorted: np.ndarray, n: int) -> np.ndarray:
    """Where each household's rows start in the sorted codes, and the end: ``n + 1`` boundaries."""
    return np.searchsorted(hh_sorted, np.arange(n + 1), side="left").astype(np.int64)


def _ranges(offsets: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row numbers of the households ``codes`` (increasing): the ranges ``offsets[c]:offsets[c+1]``."""
    starts, lengths = offsets[codes], offsets[codes + 1] - offsets[codes]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts, lengths = starts[lengths > 0], lengths[lengths > 0]
    # within a range the row number grows by one; where a range begins it jumps to the range's start
    step = np.ones(total, dtype=np.int64)
    begins = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    step[begins] = starts - np.concatenate(([1], starts[:-1] + lengths[:-1])) + 1
    step[0] = starts[0]
    return np.cumsum(step)


def _increasing(keys: pa.Array) -> bool:
    """Strictly increasing, nulls nowhere: the files as the platform writes them (and cheap to see)."""
    n = len(keys)
    return keys.null_count == 0 and (n < 2 or bool(pc.all(pc.greater(keys.slice(1), keys.slice(0, n - 1))).as_py()))


def _duplicated(keys: pa.Array) -> bool:
    """Whether a key repeats (two missing keys count as a repeat, as pandas' ``duplicated`` says);
    a sorted column is checked in one pass, any other by hashing every key."""
    return not _increasing(keys) and pc.count_distinct(keys, mode="all").as_py() < len(keys)


# ---- reading -------------------------------------------------------------------------------------
def _read_raw(directory: str | Path, name: str) -> dict[str, Column] | None:
    """One table's columns: :class:`Coded` strings (arrow strings for the keys of
    :data:`KEY_STRINGS`), the rest numpy arrays with the dtypes of
    :func:`features.normalise.normalise_table`. Parquet goes through arrow; anything arrow cannot read
    as the contract's types (CSV, dates as text, ...) through pandas, as ``read_tables`` reads it."""
    path = Path(directory) / f"{name}.parquet"
    if path.exists():
        schema = pq.read_schema(path)
        spec = columns_of(name, schema.names)
        if all(c in schema.names and _arrow_fits(schema.field(c).type, kind) for c, kind in spec.items()):
            coded = [c for c, kind in spec.items() if kind in STRING_KINDS and (name, c) not in KEY_STRINGS]
            table = pq.read_table(path, columns=list(spec), read_dictionary=coded)
            out: dict[str, Column] = {}
            for col, kind in spec.items():
                chunked = table.column(col)
                if (name, col) in KEY_STRINGS:
                    out[col] = chunked
                elif kind in STRING_KINDS:
                    out[col] = Coded.from_arrow(chunked)
                else:
                    out[col] = _numbers(chunked, kind)
            return out
    frame = read_frame(directory, name)
    if frame is None:
        return None
    frame = normalise_table(name, frame)
    return {c: (Coded.of(frame[c].to_numpy()) if kind in STRING_KINDS and (name, c) not in KEY_STRINGS
                else frame[c].to_numpy()) for c, kind in columns_of(name, frame.columns).items()}


def _arrow_fits(t: pa.DataType, kind: str) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if kind in STRING_KINDS:
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if kind in ("int", "money"):
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    return (pa.types.is_timestamp(t) and t.tz is None) or pa.types.is_date(t)


def _numbers(chunked: pa.ChunkedArray, kind: str) -> np.ndarray:
    """As ``normalise_table``: counts int64 (float64 where one is missing), money float64, dates ns."""
    values = chunked.to_numpy()
    if kind == "int":
        return values.astype(np.int64) if values.dtype.kind in "iu" or not np.isnan(values).any() \
            else values.astype(np.float64)
    if kind == "money":
        return values.astype(np.float64, copy=False)
    return values.astype("datetime64[ns]")
