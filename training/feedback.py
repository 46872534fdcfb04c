"""Caseworkers' feedback as labels: the visits recorded through ``POST /v1/feedback`` join the
platform's ``verifications`` table before the next retrain. Training takes them as data
(:class:`FeedbackLabels`); reading them from the service's store is the caller's job (the command
line's ``train --feedback-url``), so training never depends on a store.

Feedback rows are verifications in the contract's sense (household_id, visited_on, finding). A visit
the platform also exported in its own table appears once: exact duplicates are dropped. Feedback on
households that are not in the data (another city, a typo) cannot label anything and is counted,
not silently used.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.normalise import normalise_table
from features.tables import TABLE_COLUMNS, Tables


@dataclass(frozen=True, eq=False)
class FeedbackLabels:
    """Visit findings as rows of the contract's ``verifications`` table (``household_id``,
    ``visited_on``, ``finding``) and ``source``, where they were read from (recorded with the run;
    never a password)."""

    rows: pd.DataFrame
    source: str


@dataclass(frozen=True)
class FeedbackMerge:
    tables: Tables
    feedback_rows: int       # finding rows read from the feedback store
    added: int               # rows that were not already in the platform's verifications
    unknown_households: int  # rows whose household is not in the data (not used)


def with_feedback(tables: Tables, feedback: pd.DataFrame) -> FeedbackMerge:
    """``tables`` with the feedback's verification rows added (``feedback`` as returned by
    ``store.feedback.feedback_verifications``)."""
    cols = list(TABLE_COLUMNS["verifications"])
    fb = normalise_table("verifications", feedback.loc[:, cols].copy()) if len(feedback) else None
    if fb is None:
        return FeedbackMerge(tables, 0, 0, 0)
    known = fb["household_id"].isin(tables.households["household_id"])
    usable = fb.loc[known]
    merged = pd.concat([tables.verifications, usable], ignore_index=True).drop_duplicates(ignore_index=True)
    added = len(merged) - len(tables.verifications.drop_duplicates())
    new = Tables(**{name: (merged if name == "verifications" else getattr(tables, name)) for name in TABLE_COLUMNS})
    return FeedbackMerge(new, len(fb), added, int((~known).sum()))
