"""Point-in-time training snapshots: features as of T, labels from verifications in (T, T + 180 days].

An unvisited household is unknown, not negative; training treats "no finding in the window" as 0
(there is nothing else to learn from), and says so: ``visited`` is kept beside every row so the
selection bias of the labels can be measured (training/evaluate.py), and where the synthetic city's
latent truth is at hand, evaluation also reports against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from features.build import build_features
from features.groups import household_groups
from features.policy import PolicyBook
from features.tables import Tables

LABEL_DAYS = 180
STEP_MONTHS = 2
MIN_HISTORY_MONTHS = 12


@dataclass(frozen=True)
class Split:
    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    test: pd.Timestamp


def data_span(tables: Tables) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day covered by the tables' dated rows."""
    months = tables.income["month_index"]
    dates = [tables.claims["service_date"], tables.verifications["visited_on"]]
    first = min([pd.Timestamp(year=int(months.min()) // 12, month=int(months.min()) % 12 + 1, day=1)]
                + [d.min() for d in dates if len(d)])
    last = max(d.max() for d in dates if len(d))
    return first, last


def plan_split(first: pd.Timestamp, last: pd.Timestamp) -> Split:
    """Month-end snapshots every 3 months; the test snapshot is the last whose label window ends by
    ``last``; validation is the last whose window ends by the test date, training the ones whose
    windows end by the validation date, so no label window overlaps a later split's."""
    ends = pd.date_range(first + pd.DateOffset(months=MIN_HISTORY_MONTHS), last, freq="ME")
    window = pd.Timedelta(days=LABEL_DAYS)
    test = max(t for t in ends if t + window <= last)
    validation = max(t for t in ends if t + window <= test)
    train = [t for t in ends if t + window <= validation]
    train = train[::-1][::STEP_MONTHS][::-1]
    if not train:
        raise ValueError(f"the data span {first.date()}..{last.date()} is too short for a time-based split")
    return Split(train=tuple(train), validation=validation, test=test)


def labels(verifications: pd.DataFrame, index: pd.Index, as_of: pd.Timestamp, risk: str) -> pd.DataFrame:
    """``label``: a finding ``risk`` in (T, T+180d]; ``visited``: any visit in that window."""
    v = verifications
    in_window = (v["visited_on"] > as_of) & (v["visited_on"] <= as_of + pd.Timedelta(days=LABEL_DAYS))
    w = v.loc[in_window]
    return pd.DataFrame({
        "label": index.isin(w.loc[w["finding"] == risk, "household_id"]).astype("int8"),
        "visited": index.isin(w["household_id"]).astype("int8"),
    }, index=index)


def truth_labels(truth: pd.DataFrame | None, index: pd.Index, as_of: pd.Timestamp, risk: str) -> np.ndarray | None:
    """Synthetic latent truth: in hardship ``risk`` at some month of (T, T+6 months]."""
    if truth is None:
        return None
    t = truth.loc[truth["finding"] == risk]
    start = t["start_month"].str.slice(0, 4).astype(int) * 12 + t["start_month"].str.slice(5, 7).astype(int) - 1
    end = t["end_month"].str.slice(0, 4).astype(int) * 12 + t["end_month"].str.slice(5, 7).astype(int) - 1
    m = as_of.year * 12 + as_of.month - 1
    active = t.loc[((end > m) & (start <= m + 6)).to_numpy(), "household_id"]
    return index.isin(active).astype("int8")


def last_wage_month(tables: Tables) -> pd.Series:
    """Per person whose latest ``employment`` is ``unemployed``: the last month (``month_index``) with
    a wage."""
    p, inc = tables.persons, tables.income
    unemployed = p.loc[p["employment"] == "unemployed", "person_id"]
    wages = inc.loc[(inc["source"] == "wage") & inc["person_id"].isin(unemployed), ["person_id", "month_index"]]
    return wages.groupby("person_id")["month_index"].max()


def employment_as_of(tables: Tables, as_of: pd.Timestamp, last_wage: pd.Series | None = None) -> Tables:
    """``tables`` with each person's ``employment`` as it stood at ``as_of``, as far as the rows tell.
    The persons table holds the *latest* known status (docs/contract.md), so a snapshot as of an
    earlier T would show a job lost after T: future information the unemployment model and its rule
    would learn from. An ``unemployed`` person still paid a wage in T's month had the job at T and
    reads ``employed``. (A person unemployed at T and back at work since still reads ``employed``:
    that is lost, not invented.) The other tables are the same frames; ``last_wage``:
    :func:`last_wage_month`'s, computed once for many dates."""
    last_wage = last_wage_month(tables) if last_wage is None else last_wage
    m = as_of.year * 12 + as_of.month - 1
    later = (tables.persons["person_id"].map(last_wage) >= m).to_numpy()
    if not later.any():
        return tables
    persons = tables.persons.copy()
    persons.loc[later, "employment"] = "employed"
    return Tables(tables.households, persons, tables.income, tables.claims, tables.assistance, tables.verifications)


def snapshot(tables: Tables, as_of: pd.Timestamp, policy: PolicyBook, risk: str,
             truth: pd.DataFrame | None = None, last_wage: pd.Series | None = None,
             employment_at_date: bool = True) -> pd.DataFrame:
    """Features as of T with ``label``, ``visited``, ``as_of``, the fairness groups as ``group_*``
    columns (never features) and ``truth`` where known. ``employment_at_date``: the persons'
    employment as it stood at T (:func:`employment_as_of`; False: the latest status, as the table
    holds it, for a sensitivity run)."""
    at_t = employment_as_of(tables, as_of, last_wage) if employment_at_date else tables
    feats = build_features(at_t, as_of, policy)
    lab = labels(tables.verifications, feats.index, as_of, risk)
    groups = household_groups(tables, as_of).add_prefix("group_")
    out = feats.join(lab).join(groups)
    out["as_of"] = as_of
    tl = truth_labels(truth, feats.index, as_of, risk)
    if tl is not None:
        out["truth"] = tl
    return out


def relabel(snaps: pd.DataFrame, verifications: pd.DataFrame, risk: str,
            truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """``snaps`` (from :func:`build_snapshots`) with ``label`` and ``truth`` for ``risk`` instead: the
    features, groups and ``visited`` do not depend on the risk, so they are not built again."""
    out = snaps.copy()
    as_of = out["as_of"].to_numpy()
    label = np.zeros(len(out), dtype="int8")
    true = np.zeros(len(out), dtype="int8")
    for t in pd.unique(as_of):
        rows = np.flatnonzero(as_of == t)
        index = pd.Index(out.index[rows])
        label[rows] = labels(verifications, index, pd.Timestamp(t), risk)["label"].to_numpy()
        tl = truth_labels(truth, index, pd.Timestamp(t), risk)
        if tl is not None:
            true[rows] = tl
    out["label"] = label
    if truth is not None:
        out["truth"] = true
    return out


def build_snapshots(tables: Tables, dates: list[pd.Timestamp], policy: PolicyBook, risk: str,
                    truth: pd.DataFrame | None = None, progress: bool = True,
                    employment_at_date: bool = True) -> pd.DataFrame:
    last_wage = last_wage_month(tables) if employment_at_date else None
    frames = [snapshot(tables, t, policy, risk, truth, last_wage, employment_at_date)
              for t in tqdm(dates, desc="snapshots", unit="as-of", disable=not progress)]
    return pd.concat(frames)
