"""What a caseworker gets beside the probabilities: today's high-risk lists, the policy calculator's
eligibility and the warm list (暖心清单) of measures, all from the same features and the dated
policy file. One object, built once at start, serves the API, the household file and the worklist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.io import load_policy_book
from features.policy import PolicyBook
from features.tables import Tables
from policy import check_programs, load_eligibility
from policy.lists import ListBook, household_lists, load_lists
from policy.parameters import EligibilityBook
from policy.warm import MeasureBook, load_measures, warm_list


@dataclass(frozen=True)
class Advice:
    lists: list[dict[str, Any]]
    eligibility: dict[str, Any]
    warm_list: list[dict[str, Any]]

    @property
    def eligible_programs(self) -> list[str]:
        return [p["program"] for p in self.eligibility["programs"] if p["eligible"]]


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
        day = pd.Timestamp(as_of).date()
        lists = household_lists(features, day, self.policy, self.lists)[0]
        eligibility = check_programs(tables, day, self.policy, self.eligibility, features.iloc[0])
        return Advice(lists=lists, eligibility=eligibility,
                      warm_list=warm_list(lists, eligibility["programs"], scores, self.measures, as_of=day,
                                          features=features.iloc[0]))
