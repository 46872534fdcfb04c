"""The contract checks on whole tables, once, for both readers of files.

:func:`contract_problems` is written against :class:`ContractColumns`, the few questions the
checks ask of the tables; :class:`TablesColumns` answers them for pandas :class:`~features.tables.Tables`
(:func:`features.io.check_tables`), ``features.city`` for the whole city's coded columns, where a
category check looks at the distinct values and their row counts, not at 45 million rows. Both
readers thus refuse the same files with the same messages, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd

from features.contract import CATEGORIES, TABLE_COLUMNS
from features.tables import Tables

MONTH = r"\d{4}-(0[1-9]|1[0-2])"
KEYS = (("households", "household_id"), ("persons", "person_id"), ("claims", "claim_id"))


class ContractColumns(Protocol):
    """Read access to the contract tables for the checks. A table that is absent (verifications
    may be) answers as an empty one."""

    def distinct(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """A string column's distinct values (object array; a missing value as ``pd.NA``) and the
        number of rows holding each; an optional column the table lacks is missing on every row."""

    def numbers(self, table: str, column: str) -> np.ndarray:
        """A count or money column (int64 or float64; NaN where missing)."""

    def dates(self, table: str, column: str) -> np.ndarray:
        """A date column, ``datetime64[ns]`` (NaT where missing)."""

    def duplicated(self, table: str, key: str) -> bool:
        """Whether a key repeats (two missing keys count as a repeat)."""

    def pairs(self, table: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct pairs of two string columns (``a``'s values, ``b``'s values, object arrays,
        a missing value as ``pd.NA``) and the rows holding each; an optional column the table lacks
        (``households.city``) is missing on every row."""

    def household_ids(self) -> np.ndarray:
        """The households table's ids."""

    def heads(self) -> pd.Series:
        """Heads per household id as the persons table spells it (ids without one may be absent)."""

    def persons_known(self, table: str) -> bool:
        """Whether every ``person_id`` of ``table`` (income, claims) is a person of the persons table."""


def contract_problems(columns: ContractColumns, towns: frozenset[str] | None = None,
                      cities: Mapping[str, frozenset[str]] | None = None) -> list[str]:
    """The contract's checks on whole tables; the problems found (empty when all hold), in a fixed
    order and words that the tests and the operators read. ``towns``: the known town codes;
    ``cities``: each known city's towns, to which the optional ``households.city`` column is held
    (a city given must be known and its town one of that city's; an empty one is the town's)."""
    problems: list[str] = []
    for (table, column), allowed in CATEGORIES.items():
        if bad := _outside(*columns.distinct(table, column), allowed):
            problems.append(f"{table}.{column}: {bad} values outside {list(allowed)}")
    if towns is not None and (bad := _outside(*columns.distinct("households", "town"), towns)):
        problems.append(f"households.town: {bad} unknown town codes")
    if cities is not None:
        problems += _city_problems(columns, cities)
    for table, spec in TABLE_COLUMNS.items():
        for column, kind in spec.items():
            if kind in ("money", "int"):
                v = columns.numbers(table, column)
                if (v.dtype.kind == "f" and not np.isfinite(v).all()) or (v < 0).any():
                    problems.append(f"{table}.{column}: negative, missing or non-finite values")
    for table, spec in TABLE_COLUMNS.items():
        for column, kind in spec.items():
            if kind == "date" and (missing := int(np.isnat(columns.dates(table, column)).sum())):
                problems.append(f"{table}.{column}: {missing} missing dates")
    months, rows = columns.distinct("income", "month")
    well_formed = pd.Series(months, dtype=object).astype("string").str.fullmatch(MONTH)
    if bad := int(rows[~well_formed.fillna(False).astype(bool).to_numpy()].sum()):
        problems.append(f"income.month: {bad} values not a YYYY-MM month")
    total, fund, critical, assistance, oop = (columns.numbers("claims", c) for c in (
        "total_cost", "fund_paid", "critical_illness_paid", "assistance_paid", "out_of_pocket"))
    parts = fund + critical + assistance + oop
    if broken := int((np.round(total * 100) != np.round(parts * 100)).sum()):
        problems.append(f"claims: {broken} rows where total_cost != the sum of its parts")
    g = columns.numbers("persons", "disability_grade")
    if ((g < 0) | (g > 4)).any():
        problems.append("persons.disability_grade: outside 0-4")
    for table, key in KEYS:
        if columns.duplicated(table, key):
            problems.append(f"{table}.{key}: duplicated keys")
    heads = columns.heads()
    with_head = pd.Index(heads.index[heads.to_numpy() > 0], dtype=object)
    if not pd.Index(columns.household_ids(), dtype=object).isin(with_head).all() or (heads > 1).any():
        problems.append("persons: each household needs exactly one head")
    for table in ("income", "claims"):
        if not columns.persons_known(table):
            problems.append(f"{table}.person_id: persons not in the persons table")
    return problems


def _city_problems(columns: ContractColumns, cities: Mapping[str, frozenset[str]]) -> list[str]:
    """The optional ``households.city`` column against the known cities and their towns."""
    out = []
    town, city, rows = columns.pairs("households", "town", "city")
    given = np.array([isinstance(c, str) and c != "" for c in city], dtype=bool)
    known = np.array([isinstance(c, str) and c in cities for c in city], dtype=bool)
    if unknown := int(rows[given & ~known].sum()):
        out.append(f"households.city: {unknown} unknown city codes (known: {', '.join(cities)})")
    elsewhere = np.array([k and t not in cities[c] for t, c, k in zip(town, city, known, strict=True)], dtype=bool)
    if moved := int(rows[elsewhere].sum()):
        out.append(f"households.city: {moved} households whose town is not a town of their city")
    return out


def pair_counts(a_codes: np.ndarray, a_values: np.ndarray, b_codes: np.ndarray, b_values: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`ContractColumns.pairs` from two coded columns (codes into their values, missing last)."""
    if not len(a_codes):
        return np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    key = a_codes.astype(np.int64) * len(b_values) + b_codes.astype(np.int64)
    distinct, counts = np.unique(key, return_counts=True)
    return a_values[distinct // len(b_values)], b_values[distinct % len(b_values)], counts


def refuse(problems: list[str]) -> None:
    """``ValueError`` listing the first 20 problems, if there are any."""
    if problems:
        raise ValueError("bad input tables:\n  " + "\n  ".join(problems[:20]))


def _outside(values: np.ndarray, rows: np.ndarray, allowed: Iterable[str]) -> int:
    """Rows whose value is not one of ``allowed`` (missing included), from the distinct values."""
    bad = ~pd.Series(values, dtype=object).isin(list(allowed)).to_numpy()
    return int(rows[bad].sum())


class TablesColumns:
    """:class:`ContractColumns` of pandas :class:`~features.tables.Tables`."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables

    def _coded(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        frame = getattr(self.tables, table)
        if column not in frame.columns:  # an optional column the table lacks: missing everywhere
            return np.zeros(len(frame), dtype=np.int64), np.array([pd.NA], dtype=object)
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        values = np.append(np.asarray(uniques, dtype=object), pd.NA)
        return np.where(codes < 0, len(values) - 1, codes), values

    def distinct(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        codes, values = self._coded(table, column)
        return values, np.bincount(codes, minlength=len(values))

    def pairs(self, table: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return pair_counts(*self._coded(table, a), *self._coded(table, b))

    def numbers(self, table: str, column: str) -> np.ndarray:
        return getattr(self.tables, table)[column].to_numpy(dtype="float64")

    def dates(self, table: str, column: str) -> np.ndarray:
        return getattr(self.tables, table)[column].to_numpy(dtype="datetime64[ns]")

    def duplicated(self, table: str, key: str) -> bool:
        return bool(getattr(self.tables, table)[key].duplicated().any())

    def household_ids(self) -> np.ndarray:
        return self.tables.households["household_id"].to_numpy()

    def heads(self) -> pd.Series:
        persons = self.tables.persons
        return persons.loc[persons["relation"] == "head", "household_id"].value_counts()

    def persons_known(self, table: str) -> bool:
        return bool(getattr(self.tables, table)["person_id"].isin(self._persons).all())

    @cached_property
    def _persons(self) -> set[str]:
        return set(self.tables.persons["person_id"])
