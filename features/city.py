"""The contract tables of a whole city, read once into compact columns sorted by household.

Memory is bounded by the chunk, not the city. The raw tables are read once into compact columns
sorted by household (:class:`CityTables`: strings as integer codes into their distinct values,
every row keyed by its household's position among the sorted household ids). A chunk of households
is then a contiguous range of rows in every table, and becomes its own small
:class:`features.tables.Tables`, which goes through the one feature path
(:func:`features.build.build_features`) exactly as the whole city would: a household's features
depend on its own rows only, and its rows keep their order, so chunking changes no number.

Reading runs the checks :func:`features.io.check_tables` runs (:func:`features.checks.contract_problems`),
on the coded columns (a category check looks at the distinct values, not at 45 million rows).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features._city_columns import (
    KEY_STRINGS,
    STRING_KINDS,
    Coded,
    Column,
    _arrow_strings,
    _duplicated,
    _increasing,
    _lookup,
    _objects,
    _offsets,
    _order_by,
    _ranges,
    _read_raw,
    _reorder,
    _rows_of,
)
from features.checks import contract_problems, pair_counts, refuse
from features.contract import OPTIONAL_COLUMNS, TABLE_COLUMNS, columns_of
from features.normalise import month_index_of, normalise_table
from features.policy import PolicyBook
from features.tables import Tables

__all__ = ["CityTables", "Coded"]


@dataclass
class _Part:
    """One table's rows sorted by household code. ``key`` (household_id or person_id) is not stored
    per row but derived, ``key_values[key_codes]``, so it costs an int32 per row."""

    name: str
    columns: dict[str, Column]
    offsets: np.ndarray  # n_households + 1 row boundaries
    key: str
    key_codes: np.ndarray
    key_values: np.ndarray
    month_index: np.ndarray | None = None  # income: the month index of each distinct month value

    def arrays(self, rows: slice | np.ndarray) -> dict[str, np.ndarray]:
        out = {c: (self.key_values[self.key_codes[rows]] if c == self.key else _rows_of(self.columns[c], rows))
               for c in columns_of(self.name, self.columns)}
        if self.month_index is not None:
            out["month_index"] = self.month_index[self.columns["month"].codes[rows]]
        return out


class CityTables:
    """The contract tables of a whole city, keyed by household and sorted by it, so that any set of
    households is a cheap :class:`~features.tables.Tables` (:meth:`slice`, :meth:`take`) with the
    same columns, dtypes and row order (within each household) as :func:`features.io.read_tables`.

    Rows that belong to no household of the households table (a person of an unknown household,
    income or claims of an unknown person) are left out, as :func:`build_features` leaves them out;
    ``dropped`` counts them. Verifications (labels) are not kept: the batch never reads them.
    """

    def __init__(self, household_ids: np.ndarray, parts: dict[str, _Part], dropped: dict[str, int]) -> None:
        self.household_ids = household_ids  # sorted, unique; a household's code is its position
        self.n = len(household_ids)
        self._parts = parts
        self.dropped = dropped
        self.read_seconds = 0.0  # how long reading and checking the files took (0: built in memory)
        self._no_verifications = _empty_arrays("verifications")

    # ---- building ----------------------------------------------------------------------------
    @classmethod
    def read(cls, directory: str | Path, *, policy: PolicyBook | None = None, check: bool = True) -> CityTables:
        """Reads ``<table>.parquet`` (or ``.csv``) from ``directory``. With ``check``, raises
        ``ValueError`` with the problems :func:`features.io.check_tables` would report."""
        start = time.perf_counter()
        raw = {}
        for name in TABLE_COLUMNS:
            raw[name] = _read_raw(directory, name)
            if raw[name] is None and name != "verifications":
                raise FileNotFoundError(f"{directory}: no {name}.parquet or {name}.csv")
        city = cls._build(raw, policy.all_towns if policy else None, check, policy.city_towns if policy else None)
        city.read_seconds = time.perf_counter() - start
        return city

    @classmethod
    def from_tables(cls, tables: Tables) -> CityTables:
        """The same store from tables already in memory (not checked again)."""
        raw = {name: {c: (Coded.of(tables.array(name, c)) if kind in STRING_KINDS and (name, c) not in KEY_STRINGS
                          else tables.array(name, c))
                      for c, kind in columns_of(name, [c for c in OPTIONAL_COLUMNS.get(name, {})
                                                       if tables.has(name, c)]).items()}
               for name in TABLE_COLUMNS}
        return cls._build(raw, None, check=False)

    @classmethod
    def _build(cls, raw: dict[str, Any], towns: frozenset[str] | None, check: bool,
               cities: dict[str, frozenset[str]] | None = None) -> CityTables:
        households, persons, income, claims, assistance = (raw[n] for n in (
            "households", "persons", "income", "claims", "assistance"))
        keys = _arrow_strings(households["household_id"])
        order = None if _increasing(keys) else pc.sort_indices(keys).to_numpy()
        if order is not None:
            keys = keys.take(pa.array(order))
        household_ids = _objects(keys)
        person_keys = _arrow_strings(persons["person_id"])
        duplicated = {"households": _duplicated(keys), "persons": _duplicated(person_keys)}
        # codes: a household's position among the sorted ids; a person's among the persons' rows
        p_hh = _lookup(persons["household_id"], keys)
        i_person = _lookup(income.pop("person_id"), person_keys)
        c_person = _lookup(claims.pop("person_id"), person_keys)
        a_hh = _lookup(assistance["household_id"], keys)
        if check:
            columns = _CodedColumns(raw, household_ids, duplicated, {"income": i_person, "claims": c_person})
            refuse(contract_problems(columns, towns, cities))
        for table, key in (("households", "household_id"), ("persons", "person_id")):
            if duplicated[table]:
                raise ValueError(f"{table}.{key}: duplicated keys")

        n = len(household_ids)
        parts = {"households": _Part("households", {c: _reorder(v, order) for c, v in households.items()
                                                    if c != "household_id"},
                                     np.arange(n + 1), "household_id", np.arange(n), household_ids)}
        dropped = {}
        p_order, p_hh = _order_by(p_hh)
        dropped["persons"] = len(person_keys) - len(p_hh)
        parts["persons"] = _Part("persons", {c: _reorder(v, p_order) for c, v in persons.items()
                                             if c != "household_id"}, _offsets(p_hh, n), "household_id", p_hh,
                                 household_ids)
        # a person's new position (-1: left out), with one more slot so that -1 maps to -1
        renumber = np.full(len(person_keys) + 1, -1, dtype=np.int32)
        if p_order is None:
            renumber[:-1] = np.arange(len(person_keys), dtype=np.int32)
        else:
            renumber[p_order] = np.arange(len(p_order), dtype=np.int32)
        person_ids = _objects(persons["person_id"])
        person_ids = person_ids if p_order is None else person_ids[p_order]
        person_hh = np.append(p_hh, -1).astype(np.int32)
        for name, person, columns in (("income", i_person, income), ("claims", c_person, claims)):
            position = renumber[person]
            parts[name], dropped[name] = _part(name, columns, person_hh[position], n, "person_id", position,
                                               person_ids)
        del i_person, c_person
        parts["assistance"], dropped["assistance"] = _part("assistance", assistance, a_hh, n, "household_id",
                                                           a_hh, household_ids)
        month = parts["income"].columns["month"]
        parts["income"].month_index = month_index_of(pd.Series(month.values, dtype=object)).to_numpy()
        return cls(household_ids, parts, dropped)

    # ---- subsets -----------------------------------------------------------------------------
    def slice(self, lo: int, hi: int) -> Tables:
        """The households of codes ``lo`` ≤ code < ``hi`` (ids in sorted order)."""
        return Tables.from_arrays({
            **{name: part.arrays(slice(int(part.offsets[lo]), int(part.offsets[hi])))
               for name, part in self._parts.items()},
            "verifications": self._no_verifications})

    def take(self, codes: np.ndarray | Sequence[int]) -> Tables:
        """The households of the given codes (any order, repeats ignored; they come out sorted)."""
        codes = np.unique(np.asarray(codes, dtype=np.int64))
        return Tables.from_arrays({
            **{name: part.arrays(_ranges(part.offsets, codes)) for name, part in self._parts.items()},
            "verifications": self._no_verifications})

    def codes_of(self, household_ids: Iterable[str]) -> np.ndarray:
        """The codes of the given household ids; ``KeyError`` naming the first unknown one."""
        wanted = np.asarray(list(household_ids), dtype=object)
        codes = np.searchsorted(self.household_ids, wanted)
        found = (codes < self.n) & (self.household_ids[np.minimum(codes, self.n - 1)] == wanted) if self.n else \
            np.zeros(len(wanted), bool)
        if not found.all():
            raise KeyError(f"unknown household {wanted[np.flatnonzero(~found)[0]]!r}")
        return codes

    def household_column(self, column: str) -> np.ndarray:
        """A column of the households table, in code order."""
        return self._parts["households"].arrays(slice(0, self.n))[column]

    def last_income_day(self) -> dt.date:
        """The last day of the latest income month: the data's "today", the batch's default as_of."""
        part = self._parts["income"]
        used = np.flatnonzero(part.columns["month"].counts() > 0)
        months = part.month_index[used]
        if not len(months) or months.max() < 0:
            raise ValueError("no income rows to date the data by: give as_of")
        year, month0 = divmod(int(months.max()) + 1, 12)
        return dt.date(year, month0 + 1, 1) - dt.timedelta(days=1)

    def rows(self) -> dict[str, int]:
        return {name: int(part.offsets[-1]) for name, part in self._parts.items()}


def _part(name: str, columns: dict[str, Column], hh: np.ndarray, n: int, key: str, key_codes: np.ndarray,
          key_values: np.ndarray) -> tuple[_Part, int]:
    order, hh_sorted = _order_by(hh)
    part = _Part(name, {c: _reorder(v, order) for c, v in columns.items() if c != key}, _offsets(hh_sorted, n),
                 key, key_codes if order is None else key_codes[order], key_values)
    return part, len(hh) - len(hh_sorted)


def _empty_arrays(name: str) -> dict[str, np.ndarray]:
    frame = normalise_table(name, pd.DataFrame({c: [] for c in TABLE_COLUMNS[name]}))
    return {c: frame[c].to_numpy() for c in frame.columns}


# ---- the boundary checks, on coded columns ------------------------------------------------------
class _CodedColumns:
    """:class:`features.checks.ContractColumns` of the city's columns as read: a category check
    looks at a :class:`Coded` column's distinct values and their row counts. The person of each
    income and claims row is already looked up (``persons``: its position, -1 where unknown), the
    households' and persons' keys already checked for repeats (``duplicated``)."""

    def __init__(self, raw: dict[str, Any], household_ids: np.ndarray, duplicated: dict[str, bool],
                 persons: dict[str, np.ndarray]) -> None:
        self._raw = raw
        self._household_ids = household_ids
        self._duplicated = dict(duplicated)
        self._persons = persons

    def distinct(self, table: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        if self._raw[table] is None:  # verifications may be absent: no rows
            return np.array([pd.NA], dtype=object), np.zeros(1, dtype=np.int64)
        coded = self._coded(table, column)
        return coded.values, coded.counts()

    def _coded(self, table: str, column: str) -> Coded:
        columns = self._raw[table]
        if column in columns:
            return columns[column]
        # an optional column the table lacks (households.city): missing on every row
        rows = len(next(iter(columns.values())))
        return Coded(np.zeros(rows, dtype=np.int8), np.array([pd.NA], dtype=object))

    def pairs(self, table: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        first, second = self._coded(table, a), self._coded(table, b)
        return pair_counts(first.codes, first.values, second.codes, second.values)

    def numbers(self, table: str, column: str) -> np.ndarray:
        return np.zeros(0) if self._raw[table] is None else self._raw[table][column]

    def dates(self, table: str, column: str) -> np.ndarray:
        return np.zeros(0, dtype="datetime64[ns]") if self._raw[table] is None else self._raw[table][column]

    def duplicated(self, table: str, key: str) -> bool:
        if table not in self._duplicated:
            self._duplicated[table] = _duplicated(_arrow_strings(self._raw[table][key]))
        return self._duplicated[table]

    def household_ids(self) -> np.ndarray:
        return self._household_ids

    def heads(self) -> pd.Series:
        relation, owner = self._raw["persons"]["relation"], self._raw["persons"]["household_id"]
        is_head = np.array([v == "head" if isinstance(v, str) else False for v in relation.values])[relation.codes]
        heads = np.bincount(owner.codes[is_head], minlength=len(owner.values))[:-1]  # the last slot: missing
        return pd.Series(heads, index=pd.Index(owner.values[:-1], dtype=object))

    def persons_known(self, table: str) -> bool:
        return not bool((self._persons[table] < 0).any())
