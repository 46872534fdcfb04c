"""All reading and writing of raw tables and of the policy file; the rest of features/ is pure.

Files are one per table, ``<name>.parquet`` or ``<name>.csv``, named as in the contract.
``check_tables`` is the boundary check for files (the API checks bundles with its own models).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from features.policy import PolicyBook, parse_policy
from features.tables import CATEGORIES, TABLE_COLUMNS, Tables, make_tables

DEFAULT_POLICY = "policy_parameters.toml"


def load_policy_book(path: str | Path | None = None) -> PolicyBook:
    """The policy parameter file; the packaged defaults when ``path`` is None."""
    if path is None:
        text = resources.files("features").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_policy(tomllib.loads(text))


def policy_file_text(path: str | Path | None = None) -> str:
    if path is None:
        return resources.files("features").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    return Path(path).read_text(encoding="utf-8")


def write_tables(frames: dict[str, pd.DataFrame], directory: str | Path, fmt: str = "parquet") -> list[Path]:
    """Writes each contract table (and any extra frame, such as the synthetic ``truth``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%d")
        else:
            raise ValueError(f"unknown format {fmt!r}; use parquet or csv")
        written.append(path)
    return written


def read_frame(directory: str | Path, name: str) -> pd.DataFrame | None:
    base = Path(directory)
    if (base / f"{name}.parquet").exists():
        return pd.read_parquet(base / f"{name}.parquet")
    if (base / f"{name}.csv").exists():
        return pd.read_csv(base / f"{name}.csv", dtype={"household_id": str, "person_id": str, "claim_id": str,
                                                         "month": str}, keep_default_na=True)
    return None


def read_tables(directory: str | Path, *, check: bool = True, policy: PolicyBook | None = None) -> Tables:
    """Reads the contract tables from ``directory``; verifications may be absent, the rest may not."""
    frames = {}
    for name in TABLE_COLUMNS:
        frame = read_frame(directory, name)
        if frame is None and name != "verifications":
            raise FileNotFoundError(f"{directory}: no {name}.parquet or {name}.csv")
        frames[name] = frame
    tables = make_tables(**frames)
    if check:
        problems = check_tables(tables, towns=(policy.all_towns if policy else None))
        if problems:
            raise ValueError("bad input tables:\n  " + "\n  ".join(problems[:20]))
    return tables


def check_tables(tables: Tables, towns: frozenset[str] | None = None) -> list[str]:
    """Contract checks on whole tables; returns the problems found (empty when all hold)."""
    problems: list[str] = []
    for (table, column), allowed in CATEGORIES.items():
        values = getattr(tables, table)[column]
        bad = ~values.isin(allowed)
        if bad.any():
            problems.append(f"{table}.{column}: {int(bad.sum())} values outside {list(allowed)}")
    if towns is not None:
        bad = ~tables.households["town"].isin(towns)
        if bad.any():
            problems.append(f"households.town: {int(bad.sum())} unknown town codes")
    for table, spec in TABLE_COLUMNS.items():
        frame = getattr(tables, table)
        for column, kind in spec.items():
            if kind in ("money", "int"):
                v = frame[column].to_numpy(dtype="float64")
                if (~np.isfinite(v)).any() or (v < 0).any():
                    problems.append(f"{table}.{column}: negative, missing or non-finite values")
    for table, spec in TABLE_COLUMNS.items():
        frame = getattr(tables, table)
        for column, kind in spec.items():
            if kind == "date" and frame[column].isna().any():
                problems.append(f"{table}.{column}: {int(frame[column].isna().sum())} missing dates")
    months = tables.income["month"].astype("string")
    bad_month = ~months.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").fillna(False).astype(bool)
    if bad_month.any():
        problems.append(f"income.month: {int(bad_month.sum())} values not a YYYY-MM month")
    c = tables.claims
    parts = (c["fund_paid"] + c["critical_illness_paid"] + c["assistance_paid"] + c["out_of_pocket"])
    broken = (np.round(c["total_cost"] * 100) != np.round(parts * 100))
    if broken.any():
        problems.append(f"claims: {int(broken.sum())} rows where total_cost != the sum of its parts")
    g = tables.persons["disability_grade"]
    if ((g < 0) | (g > 4)).any():
        problems.append("persons.disability_grade: outside 0-4")
    for table, key in (("households", "household_id"), ("persons", "person_id"), ("claims", "claim_id")):
        if getattr(tables, table)[key].duplicated().any():
            problems.append(f"{table}.{key}: duplicated keys")
    heads = tables.persons.loc[tables.persons["relation"] == "head", "household_id"].value_counts()
    hh = tables.households["household_id"]
    if not hh.isin(heads.index).all() or (heads > 1).any():
        problems.append("persons: each household needs exactly one head")
    known_persons = set(tables.persons["person_id"])
    for table in ("income", "claims"):
        if not getattr(tables, table)["person_id"].isin(known_persons).all():
            problems.append(f"{table}.person_id: persons not in the persons table")
    return problems
