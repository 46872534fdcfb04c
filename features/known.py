"""The tables as they could be known on T, as numpy arrays keyed by household code.

A household's code is its position among the sorted household ids, which is also its row in the
output of ``build_features``. Rows dated after T are left out (persons by birth_date, income by
month, claims by service_date, assistance by start_date; verifications are never read), and so are
rows that cannot be placed in a household of the households table: the join they stand for would
leave them out. Everything per household is then a ``np.bincount`` or a ``ufunc.at`` over the codes.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from features.tables import Tables

Rows = dict[str, np.ndarray]  # one table's rows as columns of equal length; "hh" is the household code

SMALL = 2000  # up to this many keys and values together, a dict beats building pandas' hash tables


def months_before(day: dt.date, k: int) -> dt.date:
    """``day`` minus ``k`` calendar months, clamped to the end of a shorter month (pandas' DateOffset)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - k, 12)
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def codes(values: np.ndarray, keys: np.ndarray, what: str) -> np.ndarray:
    """Position of each value among ``keys``, -1 where it is not one of them; ``keys`` must be unique.

    A dict for a few (one household). Otherwise pandas' hash tables, asking the big table of keys
    only once per distinct value (a lookup there misses the cache; factorizing the values mostly
    does not), and once per run of equal values (income rows usually come person by person).
    """
    if len(values) + len(keys) <= SMALL:
        position = {k: i for i, k in enumerate(keys.tolist())}
        if len(position) != len(keys):
            raise ValueError(f"{what}: duplicated keys")
        return np.fromiter((position.get(v, -1) for v in values.tolist()), np.intp, len(values))
    index = pd.Index(keys, dtype=object)
    if not index.is_unique:
        raise ValueError(f"{what}: duplicated keys")
    starts = None
    if len(values) > 1:
        try:
            starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
        except TypeError:  # a missing value (pd.NA) has no truth value: look every row up
            starts = None
        if starts is not None and 2 * len(starts) >= len(values):
            starts = None
    which, distinct = pd.factorize(values if starts is None else values[starts])
    # an object Index as the target (a bare array would be converted to pandas' string dtype); a
    # missing value's code is -1, and the -1 appended for it says "not found"
    found = np.append(index.get_indexer(pd.Index(distinct, dtype=object)), -1)[which]
    return found if starts is None else np.repeat(found, np.diff(np.append(starts, len(values))))


def ages_on(birth_date: np.ndarray, as_of: dt.date) -> np.ndarray:
    """Whole years of age on ``as_of`` (a birthday on ``as_of`` counts), float64; NaN for NaT."""
    months = birth_date.astype("datetime64[M]")
    month_of_year = months.astype(np.int64) % 12 + 1
    day = (birth_date.astype("datetime64[D]") - months).astype(np.int64) + 1
    had_birthday = month_of_year * 100 + day <= as_of.month * 100 + as_of.day
    age = (as_of.year - 1970 - months.astype("datetime64[Y]").astype(np.int64) - ~had_birthday).astype(np.float64)
    return np.where(np.isnat(birth_date), np.nan, age)


def _take(array: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return array if rows is None else array[rows]


def _selected(mask: np.ndarray) -> np.ndarray | None:
    """The rows where ``mask`` holds, or None for all of them (no copy)."""
    return None if mask.all() else np.flatnonzero(mask)


def nan_as(values: np.ndarray, fill: float) -> np.ndarray:
    """``values`` with NaN replaced by ``fill``: pandas' sums and maxima skip missing values."""
    return np.where(np.isnan(values), fill, values) if np.isnan(values).any() else values


def sum_by(hh: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-household sums in row order, missing values skipped, zero where the household has no row."""
    return np.bincount(hh, weights=nan_as(values.astype(np.float64, copy=False), 0.0), minlength=n)


def count_by(hh: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per-household count of the rows where ``mask`` holds, as float64."""
    return np.bincount(hh[mask], minlength=n).astype(np.float64)


def max_by(hh: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-household maxima, missing values skipped, -inf where the household has no value."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, hh, nan_as(values.astype(np.float64, copy=False), -np.inf))
    return out


class Known:
    """The tables cut to T and keyed by household code; each table is read when first asked for."""

    def __init__(self, tables: Tables, as_of: dt.date) -> None:
        self.tables = tables
        self.as_of = as_of
        self.day = np.datetime64(as_of, "D")
        self.month = as_of.year * 12 + as_of.month - 1  # month index of T
        ids = tables.array("households", "household_id")
        self._order: np.ndarray | None = None
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            self._order = np.argsort(ids, kind="stable")
            ids = ids[self._order]
            if (ids[1:] == ids[:-1]).any():
                raise ValueError("households.household_id: duplicated keys")
        self.household_ids = ids  # sorted, unique
        self.n = len(ids)
        self._persons: Rows | None = None
        self._person_ids: np.ndarray | None = None
        self._ages: np.ndarray | None = None

    def household(self, column: str) -> np.ndarray:
        """A column of the households table, in code order."""
        return _take(self.tables.array("households", column), self._order)

    def optional_household(self, column: str) -> np.ndarray | None:
        """An optional column of the households table (``city``), in code order; None when absent."""
        return self.household(column) if self.tables.has("households", column) else None

    def persons(self) -> Rows:
        """Persons born on or before T, of a known household."""
        if self._persons is None:
            t = self.tables
            rows = _selected(t.array("persons", "birth_date") <= self.day)
            hh = codes(_take(t.array("persons", "household_id"), rows), self.household_ids, "households.household_id")
            known = _selected(hh >= 0)
            if known is not None:
                rows = known if rows is None else rows[known]
                hh = hh[known]
            self._persons = {"hh": hh, **{c: _take(t.array("persons", c), rows) for c in (
                "birth_date", "relation", "sex", "employment", "disability_grade")}}
            self._person_ids = _take(t.array("persons", "person_id"), rows)
        return self._persons

    def ages(self) -> np.ndarray:
        """Age on T of each of :meth:`persons` (:func:`ages_on`), computed once."""
        if self._ages is None:
            self._ages = ages_on(self.persons()["birth_date"], self.as_of)
        return self._ages

    def _rows_of_persons(self, table: str, mask: np.ndarray, columns: tuple[str, ...]) -> Rows:
        """Rows of ``table`` where ``mask`` holds whose person is known; "person" is the person's
        position in :meth:`persons`."""
        persons = self.persons()
        rows = np.flatnonzero(mask)
        person = codes(self.tables.array(table, "person_id")[rows], self._person_ids, "persons.person_id")
        known = _selected(person >= 0)
        if known is not None:
            rows, person = rows[known], person[known]
        return {"hh": persons["hh"][person], "person": person,
                **{c: self.tables.array(table, c)[rows] for c in columns}}

    def income(self, first_month: int, columns: tuple[str, ...]) -> Rows:
        """Income rows of the months from ``first_month`` (a month index) to the month of T."""
        month = self.tables.array("income", "month_index")
        return self._rows_of_persons("income", (month >= first_month) & (month <= self.month), columns)

    def claims(self, after: dt.date, columns: tuple[str, ...]) -> Rows:
        """Claims with ``after`` < service_date ≤ T."""
        day = self.tables.array("claims", "service_date")
        return self._rows_of_persons("claims", (day > np.datetime64(after, "D")) & (day <= self.day), columns)

    def assistance(self, columns: tuple[str, ...]) -> Rows:
        """Assistance rows started on or before T, of a known household."""
        t = self.tables
        rows = np.flatnonzero(t.array("assistance", "start_date") <= self.day)
        hh = codes(t.array("assistance", "household_id")[rows], self.household_ids, "households.household_id")
        known = _selected(hh >= 0)
        if known is not None:
            rows, hh = rows[known], hh[known]
        return {"hh": hh, **{c: t.array("assistance", c)[rows] for c in columns}}


def is_in(values: np.ndarray, *options: Any) -> np.ndarray:
    """``values`` equal to one of ``options``; a missing value (None, NaN, pd.NA) equals none."""
    try:
        out = values == options[0]
        for option in options[1:]:
            out |= values == option
    except TypeError:  # pd.NA has no truth value: pandas' own comparison treats it as unequal
        return pd.Series(values, dtype=object).isin(options).to_numpy()
    return out
