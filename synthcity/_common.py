"""Shared plumbing of the synthetic city: the calendar, random streams, money and string columns.

Everything is vectorised over numpy arrays; string columns are built in Arrow (dictionary arrays
cast to strings) so that tens of millions of rows cost seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.io import load_policy_book
from features.policy import PolicyBook

STRING_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default ``str``


@dataclass(frozen=True)
class Calendar:
    """The simulated span: ``n_months`` whole months ending with ``end_month`` (inclusive).

    Month ``m`` (0-based) starts on ``month_start[m]``; ``month_start[n_months]`` is the day after
    the span.
    """

    end_month: str
    n_months: int

    @cached_property
    def first(self) -> np.datetime64:
        return np.datetime64(self.end_month, "M") - (self.n_months - 1)

    @cached_property
    def month_start(self) -> np.ndarray:
        """datetime64[D], length ``n_months + 1``."""
        return (self.first + np.arange(self.n_months + 1)).astype("datetime64[D]")

    @cached_property
    def days_in_month(self) -> np.ndarray:
        return np.diff(self.month_start).astype(np.int64)

    @cached_property
    def labels(self) -> np.ndarray:
        """``'YYYY-MM'`` per month."""
        return np.datetime_as_string(self.first + np.arange(self.n_months), unit="M")

    @cached_property
    def calendar_month(self) -> np.ndarray:
        """1–12 per simulated month."""
        return (self.first + np.arange(self.n_months)).astype(np.int64) % 12 + 1

    @cached_property
    def year(self) -> np.ndarray:
        return (self.first + np.arange(self.n_months)).astype(np.int64) // 12 + 1970

    @property
    def span_start(self) -> np.datetime64:
        return self.month_start[0]

    @property
    def span_end(self) -> np.datetime64:
        """Last day inside the span."""
        return self.month_start[-1] - np.timedelta64(1, "D")

    def random_day(self, rng: np.random.Generator, month: np.ndarray,
                   lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        """A day (datetime64[D]) inside each given month, uniform over the fraction [lo, hi)."""
        month = np.asarray(month, dtype=np.int64)
        dim = self.days_in_month[month]
        offset = np.floor((lo + (hi - lo) * rng.random(month.shape)) * dim).astype(np.int64)
        return self.month_start[month] + np.minimum(offset, dim - 1).astype("timedelta64[D]")


@dataclass(frozen=True)
class Policy:
    """The policy numbers the synthetic world uses, per simulated month (yuan)."""

    dibao_line: np.ndarray  # yuan/person/month in force in each month
    edge_multiple: float
    pdi_urban: float  # yuan/person/year, latest version
    pdi_rural: float
    rules: dict[str, float]


def load_policy(cal: Calendar, book: PolicyBook | None = None) -> Policy:
    """The packaged policy file's lines per month; months before its first version use the first."""
    book = book or load_policy_book()
    lines = np.empty(cal.n_months)
    for m, start in enumerate(cal.month_start[:-1]):
        day = pd.Timestamp(start).date()
        version = book.versions[0] if day < book.versions[0].effective_from else book.at(day)
        lines[m] = version.dibao_line
    latest = book.latest
    return Policy(dibao_line=lines, edge_multiple=latest.edge_multiple, pdi_urban=latest.pdi_urban,
                  pdi_rural=latest.pdi_rural, rules=dict(book.rules))


def spawn(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """One independent generator per stage, so that changing one stage leaves the others' draws."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


def choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n × k, rows need not be normalised)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def to_cents(yuan: np.ndarray) -> np.ndarray:
    """Yuan (float) to integer cents, rounded half away from zero is not needed: all are ≥ 0."""
    return np.floor(np.asarray(yuan, dtype=np.float64) * 100 + 0.5).astype(np.int64)


def from_cents(cents: np.ndarray) -> np.ndarray:
    return np.asarray(cents, dtype=np.int64) / 100.0


def round_yuan(yuan: np.ndarray) -> np.ndarray:
    """Money rounded to the cent."""
    return from_cents(to_cents(np.maximum(yuan, 0.0)))


def id_strings(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` + zero-padded 1..n, e.g. ``H0000001``."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()),
                          width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def string_column(codes: np.ndarray, labels: pa.Array | tuple[str, ...] | list[str]) -> pd.Series:
    """``labels[codes]`` as a pandas string column, built in Arrow without Python objects."""
    dictionary = labels if isinstance(labels, pa.Array) else pa.array(list(labels), type=pa.string())
    arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)
    return pd.Series(arr.cast(pa.string()).to_pandas(types_mapper={pa.string(): STRING_DTYPE}.get),
                     dtype=STRING_DTYPE)


def rolling_sum(matrix: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` columns, inclusive, along axis 1 (shorter at the start)."""
    cum = np.cumsum(matrix, axis=1, dtype=np.float64)
    out = cum.copy()
    out[:, window:] -= cum[:, :-window]
    return out


def episodes(active: np.ndarray, *, min_len: int = 1, fill_gap: int = 0) -> tuple[np.ndarray, ...]:
    """Runs of True in each row of a (n × months) matrix: ``(row, start, end)`` with ``end`` inclusive.

    Gaps of at most ``fill_gap`` months between two runs of a row are closed first; runs shorter
    than ``min_len`` months are then dropped.
    """
    n, months = active.shape
    padded = np.zeros((n, months + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    d = np.diff(padded, axis=1)
    row, start = np.nonzero(d == 1)
    _, stop = np.nonzero(d == -1)
    end = stop - 1
    if fill_gap > 0 and len(row):
        joins = (row[1:] == row[:-1]) & (start[1:] - end[:-1] - 1 <= fill_gap)
        keep_start = np.r_[True, ~joins]
        keep_end = np.r_[~joins, True]
        row, start, end = row[keep_start], start[keep_start], end[keep_end]
    keep = end - start + 1 >= min_len
    return row[keep], start[keep], end[keep]


def episode_matrix(n: int, months: int, row: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Inverse of :func:`episodes`: a boolean (n × months) matrix, True inside every run."""
    width = months + 1
    flat = (np.bincount(np.asarray(row) * width + start, minlength=n * width)
            - np.bincount(np.asarray(row) * width + end + 1, minlength=n * width))
    return np.cumsum(flat.reshape(n, width), axis=1)[:, :months] > 0
