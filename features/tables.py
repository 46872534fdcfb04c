"""The contract's raw tables (docs/contract.md) as one typed container.

Training reads them from files (``features.io``), the API builds them from one household bundle
(:func:`tables_from_bundle`); both then go through the same :func:`features.build.build_features`.
Everything here is pure: no files, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contract import (  # re-exported: the rest of the project reads them from here
    CATEGORIES,
    DIAGNOSIS_GROUPS,
    EMPLOYMENT,
    FINDINGS,
    HOUSING,
    HUKOU_TYPES,
    INCOME_SOURCES,
    PROGRAMS,
    RELATIONS,
    SETTINGS,
    SEXES,
    TABLE_COLUMNS,
    TOWNS_DEFAULT,
)
from features.normalise import arrays_from_rows, empty_table, month_index, month_index_of, normalise_table


@dataclass(frozen=True, init=False)
class Tables:
    """The contract's raw tables with normalised dtypes.

    Dates are ``datetime64[ns]``; months are kept as the integer ``month_index`` = year*12 + month-1
    beside the contract's ``month`` string. ``verifications`` is empty where labels are not known
    (the API never receives them).

    Tables made from one bundle (:func:`tables_from_bundle`) hold numpy arrays and build each
    DataFrame the first time it is read: the API path reads columns only (:meth:`array`), and six
    small DataFrames would cost more than the features themselves. Either way every attribute is
    the same DataFrame, with the same dtypes.
    """

    households: pd.DataFrame
    persons: pd.DataFrame
    income: pd.DataFrame
    claims: pd.DataFrame
    assistance: pd.DataFrame
    verifications: pd.DataFrame

    def __init__(self, households: pd.DataFrame, persons: pd.DataFrame, income: pd.DataFrame,
                 claims: pd.DataFrame, assistance: pd.DataFrame, verifications: pd.DataFrame) -> None:
        for name, frame in zip(TABLE_COLUMNS, (households, persons, income, claims, assistance, verifications),
                               strict=True):
            object.__setattr__(self, name, frame)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Mapping[str, np.ndarray]]) -> Tables:
        """Tables held as normalised column arrays (one mapping per table, columns in contract order)."""
        tables = cls.__new__(cls)
        object.__setattr__(tables, "_arrays", arrays)
        return tables

    def __getattr__(self, name: str) -> pd.DataFrame:
        # reached only for a table still held as arrays: build its DataFrame once
        arrays = self.__dict__.get("_arrays")
        if arrays is None or name not in TABLE_COLUMNS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        # Series of the arrays' own dtypes: pandas would otherwise infer its string dtype for objects
        frame = pd.DataFrame({c: pd.Series(a, dtype=a.dtype, copy=False) for c, a in arrays[name].items()})
        object.__setattr__(self, name, frame)
        return frame

    def has(self, table: str, column: str) -> bool:
        """Whether ``table`` holds ``column``: an optional column (``households.city``) may be absent."""
        frame = self.__dict__.get(table)
        return column in (self.__dict__["_arrays"][table] if frame is None else frame.columns)

    def array(self, table: str, column: str) -> np.ndarray:
        """One column as a numpy array (treat it as read-only), without building a DataFrame."""
        frame = self.__dict__.get(table)
        if frame is None:
            return self.__dict__["_arrays"][table][column]
        return frame[column].to_numpy()


def make_tables(**frames: pd.DataFrame | None) -> Tables:
    """Builds :class:`Tables` from raw frames; a table not given is empty."""
    unknown = set(frames) - set(TABLE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}")
    return Tables(**{
        name: normalise_table(name, frames[name]) if frames.get(name) is not None else empty_table(name)
        for name in TABLE_COLUMNS
    })


def tables_from_bundle(bundle: Mapping[str, Any]) -> Tables:
    """One validated household bundle (the API's request body, as plain dicts) to :class:`Tables`.

    Members may omit ``household_id``; they belong to the bundle's household by construction.
    Values in the contract's own form (strings, ``YYYY-MM-DD`` dates, ``YYYY-MM`` months, ints and
    floats) are read straight into arrays; a table holding anything else is read through pandas
    (:func:`features.normalise.normalise_table`), as all tables were before. The bundle's ``city``,
    where it gives one, is the households table's ``city`` column.
    """
    household = bundle["household"]
    owner = {"household_id": household["household_id"]}
    city = {"city": bundle["city"]} if bundle.get("city") is not None else None
    return Tables.from_arrays({
        "households": arrays_from_rows("households", [household], city),
        "persons": arrays_from_rows("persons", bundle.get("members") or [], owner),
        "income": arrays_from_rows("income", bundle.get("income") or []),
        "claims": arrays_from_rows("claims", bundle.get("claims") or []),
        "assistance": arrays_from_rows("assistance", bundle.get("assistance") or [], owner),
        "verifications": arrays_from_rows("verifications", []),
    })


def tables_from_bundles(bundles: Sequence[Mapping[str, Any]]) -> Tables:
    """Several validated bundles as one :class:`Tables`, for features built for them all at once.

    Bundle ``i``'s household is renamed ``f"{i:07d}"`` (so the households' sorted order is the
    bundles' order, and row ``i`` of ``build_features`` is bundle ``i``) and its persons
    ``f"{i:07d}:{person_id}"``: two bundles may hold the same household (at two dates) or reuse
    person ids (``P0001`` in each) without their rows mixing. A household's features depend on its
    own rows only, so bundle ``i``'s row equals ``build_features(tables_from_bundle(bundle))``.
    The bundles must have been validated (``domain.bundle``): their values are read as they are.
    """
    codes = [f"{i:07d}" for i in range(len(bundles))]
    households, members, income, claims, assistance = [], [], [], [], []
    owner_of_member, owner_of_assistance, member_ids, income_ids, claim_ids = [], [], [], [], []
    for code, b in zip(codes, bundles, strict=True):
        households.append(b["household"])
        ms, inc, cl, a = b.get("members") or [], b.get("income") or [], b.get("claims") or [], b.get("assistance") or []
        owner_of_member.extend([code] * len(ms))
        owner_of_assistance.extend([code] * len(a))
        members.extend(ms)
        income.extend(inc)
        claims.extend(cl)
        assistance.extend(a)
        prefix = code + ":"
        member_ids.extend([prefix + str(r.get("person_id")) for r in ms])
        income_ids.extend([prefix + str(r.get("person_id")) for r in inc])
        claim_ids.extend([prefix + str(r.get("person_id")) for r in cl])
    given: dict[str, list[Any]] = {"household_id": codes}
    if any(b.get("city") is not None for b in bundles):
        given["city"] = [b.get("city") for b in bundles]
    return Tables.from_arrays({
        "households": arrays_from_rows("households", households, given=given, validated=True),
        "persons": arrays_from_rows("persons", members, given={"household_id": owner_of_member,
                                                              "person_id": member_ids}, validated=True),
        "income": arrays_from_rows("income", income, given={"person_id": income_ids}, validated=True),
        "claims": arrays_from_rows("claims", claims, given={"person_id": claim_ids}, validated=True),
        "assistance": arrays_from_rows("assistance", assistance, given={"household_id": owner_of_assistance},
                                       validated=True),
        "verifications": arrays_from_rows("verifications", []),
    })


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in frame.loc[:, list(columns)].to_dict("records"):
        rec = {}
        for k, v in row.items():
            if isinstance(v, pd.Timestamp):
                rec[k] = v.strftime("%Y-%m-%d")
            elif v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
                rec[k] = None
            elif isinstance(v, np.integer):
                rec[k] = int(v)
            elif isinstance(v, np.floating):
                rec[k] = float(v)
            else:
                rec[k] = v
        out.append(rec)
    return out


def bundle_from_tables(tables: Tables, household_id: str, as_of: str) -> dict[str, Any]:
    """The API request body for one household, holding its rows dated on or before ``as_of``.

    The inverse of :func:`tables_from_bundle`; the batch/API parity test and the examples use it.
    A household's ``city`` (the optional column), where it has one, is the bundle's ``city``.
    """
    t = pd.Timestamp(as_of)
    m = t.year * 12 + t.month - 1
    hh = tables.households.loc[tables.households["household_id"] == household_id]
    if hh.empty:
        raise KeyError(household_id)
    persons = tables.persons.loc[(tables.persons["household_id"] == household_id) & (tables.persons["birth_date"] <= t)]
    ids = set(persons["person_id"])
    income = tables.income.loc[tables.income["person_id"].isin(ids) & (tables.income["month_index"] <= m)]
    claims = tables.claims.loc[tables.claims["person_id"].isin(ids) & (tables.claims["service_date"] <= t)]
    assistance = tables.assistance.loc[(tables.assistance["household_id"] == household_id)
                                       & (tables.assistance["start_date"] <= t)]
    city = hh["city"].iloc[0] if "city" in hh.columns else None
    return {
        "as_of": t.strftime("%Y-%m-%d"),
        **({"city": city} if isinstance(city, str) and city else {}),
        "household": _records(hh, TABLE_COLUMNS["households"])[0],
        "members": _records(persons, TABLE_COLUMNS["persons"]),
        "income": _records(income, TABLE_COLUMNS["income"]),
        "claims": _records(claims, TABLE_COLUMNS["claims"]),
        "assistance": _records(assistance, TABLE_COLUMNS["assistance"]),
    }


__all__ = [
    "CATEGORIES", "DIAGNOSIS_GROUPS", "EMPLOYMENT", "FINDINGS", "HOUSING", "HUKOU_TYPES", "INCOME_SOURCES",
    "PROGRAMS", "RELATIONS", "SETTINGS", "SEXES", "TABLE_COLUMNS", "TOWNS_DEFAULT", "Tables", "bundle_from_tables",
    "empty_table", "make_tables", "month_index", "month_index_of", "normalise_table", "tables_from_bundle",
    "tables_from_bundles",
]
