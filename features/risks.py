"""The risks the service scores, one per finding of the contract but ``not_in_need``, with their
Chinese names. Every part of the project that names a risk (settings, training, the warm list, the
batch and its worklist, the auditor's pages) reads it here."""

from __future__ import annotations

from features.contract import FINDINGS

RISKS: tuple[str, ...] = tuple(f for f in FINDINGS if f != "not_in_need")

RISK_LABELS: dict[str, str] = {
    "illness_poverty": "因病致贫", "disability_poverty": "因残致贫", "unemployment_poverty": "因失业致贫",
    "elderly_care_need": "老年照护需求", "child_in_difficulty": "困境儿童",
}
FINDING_LABELS: dict[str, str] = {**RISK_LABELS, "not_in_need": "无需救助"}

if set(RISK_LABELS) != set(RISKS):  # a finding added to the contract needs its Chinese name here
    raise ValueError(f"RISK_LABELS must name exactly the risks {RISKS}, has {sorted(RISK_LABELS)}")


def risk_label(risk: str) -> str:
    """The Chinese name of ``risk``; an unknown code is shown as itself."""
    return RISK_LABELS.get(risk, risk)


# ---- the cause a risk needs: a hard rule beside the model -------------------------------------
# A household without a risk's cause is never flagged for it nor banded above "low", whatever its
# probability (models/bands.py): a household with no member under 18 is not 困境儿童, one with no member
# of 60 or more has no 老年照护需求, one with no disabled member is not 因残致贫. Each cause is a count
# in the catalogue, as of the scoring date; the model records the one it was trained with. A count
# that is unknown (no member rows) does not close the gate: only a known absence does.
# Illness and unemployment have no such gate: anyone can fall ill, and a job loss can be a member's
# whom the records do not show as employed (a farmer's off-season work, an unregistered job).
RISK_CAUSES: dict[str, tuple[str, str] | None] = {
    "illness_poverty": None,
    "disability_poverty": ("n_disabled", "家中有残疾成员"),
    "unemployment_poverty": None,
    "elderly_care_need": ("n_elderly", "家中有60岁及以上成员"),
    "child_in_difficulty": ("n_minors", "家中有未成年（18岁以下）成员"),
}

if set(RISK_CAUSES) != set(RISKS):
    raise ValueError(f"RISK_CAUSES must cover exactly the risks {RISKS}, has {sorted(RISK_CAUSES)}")
