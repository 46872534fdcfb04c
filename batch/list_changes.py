"""Who entered and who left each high-risk list since the previous nightly run.

The previous run is found the way an operator lays the runs out, one folder per night under one
root (``out/2026-09-30``, ``out/2026-10-31``): among this run's output folder and its sibling
folders, the run (a folder holding ``summary.json`` and ``scores.parquet``) with the latest
``as_of`` strictly before this run's; several with that ``as_of``: the one whose summary was
written last. An operator may name the previous run's folder instead (``--previous DIR``) or ask for
none (``--previous none``). The first run has no previous run: it says so, and counts nobody as
entered.

A change is the set difference of the two runs' memberships, per list: ``entered`` (on the list
now, not in the previous run: a household new to the data counts too), ``left`` (on it then, not
now: a household gone from the data counts too). A list added or withdrawn between the runs has
all its members entered or left.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from domain.nightly_file import SCORES_FILE, SUMMARY_FILE

log = logging.getLogger(__name__)

LIST_CHANGES_FILE = "list_changes.parquet"
AUTO, NONE = "auto", "none"  # --previous: find it among the sibling folders, or compare with no run
CHANGES = {"entered": "新进入", "left": "退出"}


@dataclass(frozen=True)
class PreviousRun:
    """The run a night's lists are compared with, and its memberships read before anything is
    overwritten (the run may be the same folder as tonight's)."""

    out_dir: Path
    as_of: str
    members: pd.DataFrame  # household_id, town, list: one row per household and list it was on


def run_as_of(folder: Path) -> str | None:
    """The ``as_of`` of the batch run in ``folder``, None if the folder holds no readable run."""
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
        as_of = str(summary["as_of"])
        dt.date.fromisoformat(as_of)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return as_of if (folder / SCORES_FILE).is_file() else None


def find_previous(out_dir: Path, as_of: dt.date) -> Path | None:
    """The folder of the run before ``as_of`` among ``out_dir`` and its siblings (module docstring)."""
    out_dir = Path(out_dir).resolve()
    parent = out_dir.parent
    candidates = [out_dir, *(p for p in sorted(parent.iterdir()) if p.is_dir() and p != out_dir)] \
        if parent.is_dir() else [out_dir]
    best: tuple[str, float, Path] | None = None
    for folder in candidates:
        found = run_as_of(folder)
        if found is None or found >= as_of.isoformat():
            continue
        key = (found, (folder / SUMMARY_FILE).stat().st_mtime, folder)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def memberships(folder: Path) -> pd.DataFrame:
    """``household_id``, ``town``, ``list``: the lists column of ``folder``'s ``scores.parquet``, one
    row per household and list it is on."""
    table = pq.read_table(Path(folder) / SCORES_FILE, columns=["household_id", "town", "lists"])
    lists = table.column("lists").combine_chunks()
    rows = pc.list_parent_indices(lists)
    return pd.DataFrame({"household_id": table.column("household_id").take(rows).to_numpy(zero_copy_only=False),
                         "town": table.column("town").take(rows).to_numpy(zero_copy_only=False),
                         "list": pc.list_flatten(lists).to_numpy(zero_copy_only=False)})


def resolve_previous(previous: str | Path | None, out_dir: Path, as_of: dt.date) -> PreviousRun | None:
    """``previous`` ("auto", "none" or None, or a run's folder) as the run to compare with, its
    memberships read now; a named folder that holds no run is refused, naming it."""
    if previous is None or str(previous) == NONE:
        return None
    if str(previous) == AUTO:
        folder = find_previous(out_dir, as_of)
        if folder is None:
            return None
    else:
        folder = Path(previous)
        if run_as_of(folder) is None:
            raise ValueError(f"--previous {folder}: not a batch run's folder (needs a readable {SUMMARY_FILE} "
                             f"and {SCORES_FILE})")
    return PreviousRun(out_dir=folder.resolve(), as_of=str(run_as_of(folder)), members=memberships(folder))


def list_changes(before: pd.DataFrame, now: pd.DataFrame, order: Sequence[str],
                 labels: Mapping[str, str]) -> pd.DataFrame:
    """The households that entered or left each list between two memberships (:func:`memberships`):
    ``household_id``, ``town`` (now for those who entered, then for those who left), ``list``,
    ``label`` (中文名称), ``change`` (entered / left), ``change_zh`` (新进入 / 退出); lists in
    ``order`` (then any other, by id), entered before left, households by id."""
    keys = ["household_id", "list"]
    both = before.merge(now, on=keys, how="outer", suffixes=("_before", "_now"), indicator=True)
    changed = both[both["_merge"] != "both"]
    entered = changed["_merge"] == "right_only"
    out = pd.DataFrame({
        "household_id": changed["household_id"].astype(object),
        "town": changed["town_now"].where(entered, changed["town_before"]).astype(object),
        "list": changed["list"].astype(object),
        "change": entered.map({True: "entered", False: "left"}).astype(object)})
    rank = {list_id: k for k, list_id in enumerate(order)}
    out["_rank"] = out["list"].map(lambda x: rank.get(x, len(rank)))
    out = out.sort_values(["_rank", "list", "change", "household_id"], ascending=[True, True, True, True],
                          kind="stable").drop(columns="_rank").reset_index(drop=True)
    out.insert(3, "label", out["list"].map(lambda x: labels.get(x, x)).astype(object))
    out["change_zh"] = out["change"].map(CHANGES).astype(object)
    return out


def change_counts(changes: pd.DataFrame, order: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per list (``order``, then any other list that changed), ``{"entered": n, "left": n}``."""
    counts = changes.groupby(["list", "change"]).size()
    lists = list(dict.fromkeys([*order, *sorted(set(changes["list"]) - set(order))]))
    return {x: {c: int(counts.get((x, c), 0)) for c in CHANGES} for x in lists}


def write_list_changes(changes: pd.DataFrame, path: Path) -> None:
    schema = pa.schema([(c, pa.string()) for c in ("household_id", "town", "list", "label", "change", "change_zh")])
    pq.write_table(pa.Table.from_pandas(changes, schema=schema, preserve_index=False), path, compression="zstd")
