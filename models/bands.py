"""What a score's ``band`` and ``flagged`` mean: one rule for every risk, which a caseworker can read
(docs/bands.md) and the worklist's capacity agrees with.

- **高 high**, and only high, is **flagged** (建议走访): the household has the risk's cause (a hard
  rule beside the model, :class:`Cause`) and its probability is at least the risk's *flag line*.
- **中 medium** (留意): the cause, and a probability at least the *medium line*.
- **低 low**: everyone else, and every household without the risk's cause, whatever its probability.

The lines are set once, at training, on the calibration period's households (``[bands]`` of the
policy file, :class:`BandRule`): the flag line is where the top ``share`` of those households start
(counting only those with the cause), and never below ``high_min_probability``; the medium line is
where the next ``2 × share`` start, never below ``medium_min_probability``. The risks' shares add up
to ``capacity``, the share of households caseworkers visit in a cycle and the worklist's default, so
what is flagged fits the worklists; and a household is never called high at a probability of a few
in a thousand. A model keeps its lines and its cause in its own metadata, so an old score is
reproduced under the rule it was given under.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.catalog import BY_ID
from features.io import policy_file_text
from features.risks import RISK_CAUSES, RISKS

BANDS = ("high", "medium", "low")
_BAND_NAMES = np.array(BANDS, dtype=object)


@dataclass(frozen=True)
class Cause:
    """A risk's cause: the household has ``feature ≥ 1`` (a count of members, as of the scoring date).
    Only a known absence closes the gate: an unknown count (NaN) leaves the model to speak."""

    feature: str
    label: str  # what the cause is, in Chinese: "家中有未成年（18岁以下）成员"

    def __post_init__(self) -> None:
        if self.feature not in BY_ID:
            raise ValueError(f"cause feature {self.feature!r} is not in the catalogue")

    @property
    def absent_label(self) -> str:
        """What a caseworker reads when the gate is closed: "家中无未成年（18岁以下）成员，不提示此风险"."""
        return f"{self.label.replace('家中有', '家中无', 1)}，不提示此风险"

    def present(self, column: np.ndarray) -> np.ndarray:
        """Per row of the cause's feature column: is the cause there (or unknown)?"""
        return ~(np.asarray(column, dtype="float64") < 1)

    def present_in(self, x: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        """:meth:`present` on the rows of ``x``, a matrix whose columns are ``ids`` (a schema's order)."""
        return self.present(x[:, ids.index(self.feature)])

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "at_least": 1, "label": self.label}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> Cause | None:
        return None if raw is None else cls(feature=raw["feature"], label=raw["label"])

    @classmethod
    def of(cls, risk: str | None) -> Cause | None:
        """The cause ``features.risks.RISK_CAUSES`` names for ``risk`` (None: that risk has no gate)."""
        entry = RISK_CAUSES.get(risk or "")
        return None if entry is None else cls(*entry)


@dataclass(frozen=True)
class BandRule:
    """``[bands]`` of the policy file (see the module's docstring)."""

    capacity: float = 0.02
    high_min_probability: float = 0.05
    medium_min_probability: float = 0.01
    share: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(RISKS, 0.02 / len(RISKS)))

    def __post_init__(self) -> None:
        if not 0 < self.capacity < 1:
            raise ValueError(f"[bands] capacity must be in (0, 1), got {self.capacity}")
        if not 0 <= self.medium_min_probability <= self.high_min_probability < 1:
            raise ValueError("[bands] need 0 ≤ medium_min_probability ≤ high_min_probability < 1, got "
                             f"{self.medium_min_probability}, {self.high_min_probability}")
        if set(self.share) != set(RISKS):
            raise ValueError(f"[bands.share] must name exactly the risks {list(RISKS)}, names {sorted(self.share)}")
        if any(not 0 < s < 1 for s in self.share.values()):
            raise ValueError(f"[bands.share] each share must be in (0, 1), got {dict(self.share)}")
        total = sum(self.share.values())
        if not math.isclose(total, self.capacity, abs_tol=1e-9):
            raise ValueError(f"[bands.share] the risks' shares add up to {total:g}, not to capacity {self.capacity:g}: "
                             "what is flagged must fit the worklists")

    @classmethod
    def load(cls, path: str | None = None) -> BandRule:
        raw = dict(tomllib.loads(policy_file_text(path)).get("bands", {}))
        if not raw:
            return cls()
        unknown = sorted(set(raw) - {"capacity", "high_min_probability", "medium_min_probability", "share"})
        if unknown:
            raise ValueError(f"[bands]: unknown field(s) {unknown}")
        try:
            return cls(capacity=float(raw["capacity"]), high_min_probability=float(raw["high_min_probability"]),
                       medium_min_probability=float(raw["medium_min_probability"]),
                       share={str(k): float(v) for k, v in dict(raw["share"]).items()})
        except KeyError as e:
            raise ValueError(f"[bands]: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"[bands]: {e}") from None

    def lines(self, risk: str, p: np.ndarray, present: np.ndarray | None = None) -> tuple[float, float]:
        """The flag and medium lines of ``risk`` from the calibration households' probabilities ``p``
        (``present``: which of them have the risk's cause; None: all)."""
        share = self.share[risk]
        n = len(p)
        eligible = np.sort(np.asarray(p, dtype="float64")[present if present is not None else slice(None)])[::-1]
        if not n or not len(eligible):
            return 1.0, 1.0

        def start_of_top(k: int) -> float:
            return float(eligible[min(k, len(eligible)) - 1]) if k >= 1 else float("inf")

        flag = max(start_of_top(math.ceil(share * n - 1e-9)), self.high_min_probability)
        medium = max(start_of_top(math.ceil(3 * share * n - 1e-9)), self.medium_min_probability)
        return flag, min(medium, flag)


def visit_order(p: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    """The order a visit list takes: the probability, and below everyone (-1) a household without the
    risk's cause (``present`` None: no gate)."""
    return p if present is None else np.where(present, p, -1.0)


def bands_of(p: np.ndarray, flag: float, medium: float, present: np.ndarray | None = None) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` per probability, as Python strings (an object array: taking from
    it copies pointers, where ``np.where`` on strings would build fixed-width strings)."""
    level = np.where(p >= flag, 0, np.where(p >= medium, 1, 2))
    if present is not None:
        level = np.where(present, level, 2)
    return _BAND_NAMES[level]
