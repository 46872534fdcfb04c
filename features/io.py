"""All reading and writing of raw tables and of the policy file; the rest of features/ is pure.

Files are one per table, ``<name>.parquet`` or ``<name>.csv``, named as in the contract.
``check_tables`` is the boundary check for files (the API checks bundles with its own models).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.checks import TablesColumns, contract_problems, refuse
from features.contract import columns_of
from features.policy import PolicyBook, parse_policy
from features.tables import TABLE_COLUMNS, Tables, make_tables

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
        refuse(check_tables(tables, towns=(policy.all_towns if policy else None),
                            cities=(policy.city_towns if policy else None)))
    return tables


def check_tables(tables: Tables, towns: frozenset[str] | None = None,
                 cities: Mapping[str, frozenset[str]] | None = None) -> list[str]:
    """Contract checks on whole tables (:func:`features.checks.contract_problems`); returns the
    problems found (empty when all hold). ``towns``: the known towns (``PolicyBook.all_towns``);
    ``cities``: each city's towns (``PolicyBook.city_towns``), for the optional ``city`` column."""
    return contract_problems(TablesColumns(tables), towns, cities)


def read_households(directory: str | Path, household_ids: Iterable[str]) -> Tables:
    """The raw rows of just these households from the folder's parquet files (arrow filters, not a
    whole-city read), normalised as :func:`features.io.read_tables` normalises them."""
    ids = sorted(set(household_ids))
    base = Path(directory)
    if not all((base / f"{n}.parquet").exists() for n in TABLE_COLUMNS if n != "verifications"):
        from features.city import CityTables  # features.city reads through this module

        city = CityTables.from_tables(read_tables(directory, check=False))
        return city.take(city.codes_of(ids))

    def rows_of(name: str, key: str, values: list[str]) -> pd.DataFrame:
        path = base / f"{name}.parquet"
        file = pq.ParquetFile(path)
        columns = list(columns_of(name, file.schema_arrow.names))  # with the optional ones it has
        # an empty table written by pandas may type its strings as parquet's null: nothing to filter
        if not values or file.metadata.num_rows == 0:
            return pd.DataFrame({c: [] for c in columns})
        return pq.read_table(path, columns=columns, filters=[(key, "in", values)]).to_pandas()

    frames = {name: rows_of(name, "household_id", ids) for name in ("households", "persons", "assistance")}
    missing = sorted(set(ids) - set(frames["households"]["household_id"].astype(str)))
    if missing:
        raise KeyError(f"unknown household {missing[0]!r}")
    persons = sorted(set(frames["persons"]["person_id"].astype(str)))
    frames |= {name: rows_of(name, "person_id", persons) for name in ("income", "claims")}
    return make_tables(**frames)
