"""Drift: how far the households a model scores today have moved from those it was trained for.

At training the model keeps a *reference profile* (:class:`Profile`): for every feature of its
schema, bin edges at the reference population's deciles (fewer where values repeat, as counts and
flags do) with each bin's share, plus the share of missing values; the same for its calibrated
score. Later, any window of scored households is binned on those same edges and compared bin by
bin with the population stability index,

    PSI = Σ (current share − reference share) × ln(current share / reference share),

shares floored at :data:`FLOOR` so that an empty bin counts as very rare, not as infinitely so
(the usual convention). The thresholds that turn a PSI into a status are data (``[monitoring]``
in the policy file): commonly below 0.1 stable, 0.1–0.25 watch, above 0.25 act. A window smaller
than ``min_window`` households is reported with its PSI but the status ``too_few`` and without its
bin shares (a window of a few households would show their values): noise alone moves a PSI by about
(bins − 1) / n.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalog import BY_ID
from features.io import policy_file_text

FLOOR = 1e-4
BINS = 10
STATUSES = ("stable", "watch", "act", "too_few")
STATUS_LABELS = {"stable": "稳定", "watch": "关注", "act": "需处置", "too_few": "样本不足"}


@dataclass(frozen=True)
class Thresholds:
    """``[monitoring]`` of the policy file: PSI from ``watch`` on is watched, from ``act`` on acted on."""

    watch: float = 0.1
    act: float = 0.25
    min_window: int = 100

    def status(self, psi: float | None, n: int) -> str:
        if psi is None or n < self.min_window:
            return "too_few"
        return "act" if psi >= self.act else "watch" if psi >= self.watch else "stable"

    @classmethod
    def load(cls, path: str | None = None) -> Thresholds:
        raw = tomllib.loads(policy_file_text(path)).get("monitoring", {})
        unknown = sorted(set(raw) - {"psi_watch", "psi_act", "min_window"})
        if unknown:
            raise ValueError(f"[monitoring]: unknown field(s) {unknown}")
        t = cls(watch=float(raw.get("psi_watch", cls.watch)), act=float(raw.get("psi_act", cls.act)),
                min_window=int(raw.get("min_window", cls.min_window)))
        if not 0 < t.watch < t.act or t.min_window < 1:
            raise ValueError(f"[monitoring]: need 0 < psi_watch < psi_act and min_window ≥ 1, got {t}")
        return t


@dataclass(frozen=True)
class Binned:
    """One variable's bins: ``edges`` (ascending, the upper bound of each bin but the last, which is
    open) and the shares of the ``len(edges) + 1`` bins followed by the missing values' share."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def counts_of(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each bin (last: missing)."""
        v = np.asarray(values, dtype="float64")
        missing = np.isnan(v)
        counts = np.bincount(np.searchsorted(np.asarray(self.edges), v[~missing], side="left"),
                             minlength=len(self.edges) + 1).astype("float64")
        return np.append(counts, float(missing.sum()))

    def shares_of(self, values: np.ndarray) -> np.ndarray:
        """The shares of ``values`` in these bins (last: missing); empty input gives zeros."""
        counts = self.counts_of(values)
        return counts / len(values) if len(values) else counts

    def labels(self, unit: str = "") -> list[str]:
        """Chinese labels of the bins: "≤ a", "a–b", "> b", then "缺失"."""
        e = [_short(x) for x in self.edges]
        if not e:
            return ["全部", "缺失"]
        inner = [f"{a}–{b}" for a, b in zip(e, e[1:], strict=False)]
        return [f"≤ {e[0]}", *inner, f"> {e[-1]}", "缺失"]

    def as_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Binned:
        b = cls(tuple(float(x) for x in d["edges"]), tuple(float(x) for x in d["shares"]))
        if len(b.shares) != len(b.edges) + 2:
            raise ValueError("a reference bin set needs len(edges) + 2 shares (the last: missing)")
        return b


def bin_reference(values: np.ndarray, bins: int = BINS) -> Binned:
    """Edges at the deciles (``bins`` quantiles) of the non-missing ``values``, repeated edges
    dropped, and the shares of ``values`` in them."""
    v = np.asarray(values, dtype="float64")
    present = v[~np.isnan(v)]
    edges: tuple[float, ...] = ()
    if len(present):
        qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
        edges = tuple(float(x) for x in np.unique(qs))
        if edges and edges[-1] >= present.max():
            edges = edges[:-1]  # a last edge at the maximum would leave the open bin empty by construction
    empty = Binned(edges, (0.0,) * (len(edges) + 2))
    return Binned(edges, tuple(float(s) for s in empty.shares_of(v)))


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
        floor: float = FLOOR) -> float:
    """The population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(reference, dtype="float64"), floor)
    c = np.maximum(np.asarray(current, dtype="float64"), floor)
    return float(np.sum((c - r) * np.log(c / r)))


@dataclass(frozen=True)
class Profile:
    """A population's profile: ``n`` households, a :class:`Binned` per feature and one of the score."""

    n: int
    features: Mapping[str, Binned]
    score: Binned

    @classmethod
    def of(cls, x: np.ndarray, feature_ids: Sequence[str], probability: np.ndarray, bins: int = BINS) -> Profile:
        """The profile of ``x`` (rows: households, columns: ``feature_ids``) and their probabilities."""
        x = np.asarray(x, dtype="float64")
        return cls(n=len(x), features={f: bin_reference(x[:, j], bins) for j, f in enumerate(feature_ids)},
                   score=bin_reference(probability, bins))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "features": {f: b.as_dict() for f, b in self.features.items()},
                "score": self.score.as_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        return cls(n=int(d["n"]), features={f: Binned.from_dict(b) for f, b in d["features"].items()},
                   score=Binned.from_dict(d["score"]))


def seasonal_references(frames: Sequence[tuple[str, np.ndarray, np.ndarray]], feature_ids: Sequence[str],
                        bins: int = BINS) -> list[dict[str, Any]]:
    """One reference per calendar month among ``frames`` (``(as_of, x, probability)``, most trusted
    first: the first frame of a month is the one kept), as ``[{"as_of", "profile"}]``. Income has a
    season (year-end bonuses lift January's last three months, April's dip), so a window is compared
    with the households of its own calendar month, not with whichever month training ended in."""
    out: dict[str, dict[str, Any]] = {}
    for as_of, x, p in frames:
        out.setdefault(as_of[5:7], {"as_of": as_of, "profile": Profile.of(x, feature_ids, p, bins).as_dict()})
    return sorted(out.values(), key=lambda r: r["as_of"][5:7])


def nearest_reference(references: Sequence[Mapping[str, Any]], as_of: str) -> Mapping[str, Any] | None:
    """The reference of ``as_of``'s calendar month, else of the nearest month around the year (an
    earlier one on a tie); None when there is none."""
    if not references:
        return None
    month = int(as_of[5:7])

    def distance(r: Mapping[str, Any]) -> tuple[int, int]:
        d = (int(r["as_of"][5:7]) - month) % 12
        return (min(d, 12 - d), 0 if d > 6 else 1)

    return min(references, key=distance)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    label: str
    psi: float | None
    status: str
    bins: list[str]
    reference: list[float]
    current: list[float]

    def as_dict(self, with_bins: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"feature": self.feature, "label": self.label, "psi": self.psi, "status": self.status,
                               "status_label": STATUS_LABELS[self.status]}
        if with_bins:
            out |= {"bins": self.bins, "reference": self.reference, "current": self.current}
        return out


@dataclass(frozen=True)
class DriftReport:
    """A window compared with the reference: the score's PSI and each feature's, largest first."""

    n: int
    n_score: int
    score: FeatureDrift
    features: list[FeatureDrift]

    @property
    def score_psi(self) -> float | None:
        return self.score.psi

    def as_dict(self, thresholds: Thresholds) -> dict[str, Any]:
        return {"n": self.n, "n_score": self.n_score, "score_psi": self.score.psi, "score": self.score.as_dict(),
                "features": [d.as_dict() for d in self.features],
                "thresholds": {"psi_watch": thresholds.watch, "psi_act": thresholds.act,
                               "min_window": thresholds.min_window}}


def _rounded(a: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in a]


class Window:
    """A window of scored households, counted into the reference's bins chunk by chunk (the nightly
    batch adds its city a chunk at a time and never holds every row): :meth:`add`, then :meth:`report`."""

    def __init__(self, reference: Profile, feature_ids: Sequence[str]) -> None:
        where = {f: j for j, f in enumerate(feature_ids)}
        missing = [f for f in reference.features if f not in where]
        if missing:
            raise KeyError(f"the window lacks features of the reference: {missing}")
        self.reference, self.width = reference, len(feature_ids)
        self.columns = {f: where[f] for f in reference.features}
        self.counts = {f: np.zeros(len(b.shares)) for f, b in reference.features.items()}
        self.score_counts = np.zeros(len(reference.score.shares))
        self.n = self.n_score = 0

    def add(self, x: np.ndarray, probability: np.ndarray | None) -> Window:
        """Rows of ``x`` (columns: the ``feature_ids`` given at construction) and their probabilities
        under the reference's model (None: this window's scores are of another model version)."""
        x = np.asarray(x, dtype="float64").reshape(-1, self.width)
        for f, j in self.columns.items():
            self.counts[f] += self.reference.features[f].counts_of(x[:, j])
        self.n += len(x)
        if probability is not None:
            self.score_counts += self.reference.score.counts_of(np.asarray(probability, dtype="float64"))
            self.n_score += len(probability)
        return self

    def report(self, thresholds: Thresholds) -> DriftReport:
        feats = [_drift(f, BY_ID[f].label_zh if f in BY_ID else f, self.reference.features[f], c, self.n, thresholds,
                        BY_ID[f].unit if f in BY_ID else "")
                 for f, c in self.counts.items()]
        feats.sort(key=lambda d: (-(d.psi if d.psi is not None else -1.0), d.feature))
        score = _drift("score", "模型校准概率", self.reference.score, self.score_counts, self.n_score, thresholds)
        return DriftReport(n=self.n, n_score=self.n_score, score=score, features=feats)


def _drift(name: str, label: str, ref: Binned, counts: np.ndarray, n: int, t: Thresholds,
           unit: str = "") -> FeatureDrift:
    cur = counts / n if n else counts
    value = round(psi(ref.shares, cur), 6) if n else None
    status = t.status(value, n)
    # a window of a few households would show their values bin by bin: its shares are not given
    return FeatureDrift(feature=name, label=label, psi=value, status=status, bins=ref.labels(unit),
                        reference=_rounded(np.asarray(ref.shares)),
                        current=[] if status == "too_few" else _rounded(cur))


def compare(reference: Profile, x: np.ndarray, feature_ids: Sequence[str], probability: np.ndarray | None,
            thresholds: Thresholds) -> DriftReport:
    """The window ``x`` (rows: households; columns: ``feature_ids``, a superset of the reference's
    features) and its probabilities under the reference's model, against ``reference``."""
    return Window(reference, feature_ids).add(x, probability).report(thresholds)


def _short(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


__all__ = ["BINS", "FLOOR", "STATUSES", "STATUS_LABELS", "Binned", "DriftReport", "FeatureDrift", "Profile",
           "Thresholds", "Window", "bin_reference", "compare", "nearest_reference", "psi", "seasonal_references"]
