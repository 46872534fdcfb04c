"""What a caseworker gets beside the probabilities: today's high-risk lists, the policy calculator's
eligibility and the warm list (暖心清单) of measures, all from the same features and the dated
policy file. One object, built once at start, serves the API, the household file and the worklist.

:meth:`Advisor.advise_matrix` advises many households at once from the feature matrix the models
scored (lists and the measures' ``unless`` conditions evaluated as arrays, the calculator's inputs
counted per household in one pass); :meth:`Advisor.advise` is one household from its feature row.
Each household is judged by its own city's parameters (its ``city``, else its town's): the lists
evaluate the households of each city together, the calculator takes each one's city.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.build import household_cities
from features.io import load_policy_book
from features.policy import PolicyBook
from features.tables import Tables
from policy import load_eligibility
from policy.calculator import facts_from, household_inputs, programs_for
from policy.lists import ListBook, household_lists, load_lists
from policy.parameters import EligibilityBook
from policy.warm import MeasureBook, excluded_measures, load_measures, warm_list


@dataclass(frozen=True)
class Advice:
    lists: list[dict[str, Any]]
    eligibility: dict[str, Any]
    warm_list: list[dict[str, Any]]

    @property
    def eligible_programs(self) -> list[str]:
        """The ids of the programmes the calculator finds the household likely eligible for."""
        return [p["program"] for p in self.eligibility["programs"] if p["eligible"]]

    @property
    def eligible_program_labels(self) -> list[str]:
        """Their Chinese names (最低生活保障（低保）…), in the same order: what caseworkers read."""
        return [p["label"] for p in self.eligibility["programs"] if p["eligible"]]

    def response_fields(self) -> dict[str, Any]:
        """What the score response carries beside the scores."""
        return {"lists": self.lists, "eligible_programs": self.eligible_programs,
                "eligible_program_labels": self.eligible_program_labels, "warm_list": self.warm_list}


class _Row(Mapping[str, float]):
    """Household ``i``'s values of the feature columns, read on demand (the calculator needs nine)."""

    def __init__(self, columns: Mapping[str, np.ndarray], i: int) -> None:
        self.columns, self.i = columns, i

    def __getitem__(self, key: str) -> float:
        return float(self.columns[key][self.i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


@dataclass(frozen=True)
class Advisor:
    policy: PolicyBook
    eligibility: EligibilityBook
    lists: ListBook
    measures: MeasureBook

    @classmethod
    def load(cls, policy_path: str | None = None, policy: PolicyBook | None = None) -> Advisor:
        return cls(policy=policy or load_policy_book(policy_path), eligibility=load_eligibility(policy_path),
                   lists=load_lists(policy_path), measures=load_measures(policy_path))

    def advise(self, tables: Tables, features: pd.DataFrame, as_of: dt.date | str,
               scores: list[dict[str, Any]] | None) -> Advice:
        """One household: ``features`` is its one-row frame, ``scores`` the public score entries."""
        columns = {c: features[c].to_numpy(dtype="float64") for c in features.columns}
        return self.advise_matrix(tables, columns, as_of, [scores])[0]

    def advise_matrix(self, tables: Tables, columns: Mapping[str, np.ndarray], as_of: dt.date | str,
                      scores: Sequence[list[dict[str, Any]] | None], rows: np.ndarray | None = None) -> list[Advice]:
        """Households of ``tables`` as of ``as_of``, in the order of ``build_features``' rows:
        ``columns`` maps feature ids to their values (one per household), ``scores`` holds each
        household's public score entries (or None). ``rows``: advise only these households (their
        positions in ``tables`` and ``columns``); ``scores`` then holds theirs only."""
        day = pd.Timestamp(as_of).date()
        n_unable, rural = household_inputs(tables, day)
        cities = household_cities(tables, self.policy)  # each judged by its own city's parameters
        if rows is not None:
            columns = {c: v[rows] for c, v in columns.items()}
            n_unable, rural, cities = n_unable[rows], rural[rows], cities[rows]
        lists = household_lists(columns, day, self.policy, self.lists, cities)
        excluded = excluded_measures(self.measures, day, columns)
        out = []
        for i, (on, score) in enumerate(zip(lists, scores, strict=True)):
            eligibility = programs_for(facts_from(_Row(columns, i), int(n_unable[i]), bool(rural[i])), day,
                                       self.policy, self.eligibility, str(cities[i]))
            out.append(Advice(lists=on, eligibility=eligibility,
                              warm_list=warm_list(on, eligibility["programs"], score, self.measures, as_of=day,
                                                  excluded=excluded[i])))
        return out
