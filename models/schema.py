"""The feature schema a model was trained on: ordered ASCII ids, dtypes, ranges, Chinese labels and
the direction each feature is constrained to. It is saved beside every model and checked on both
paths, so serving can never feed a model columns in another order or of another meaning.

A risk's schema (:meth:`FeatureSchema.for_risk`) holds the catalog's features less those the risk
leaves out, each with the direction policy fixes or, where policy is silent, the risk's own
(``features.catalog.RISK_DIRECTIONS``); ``direction_source`` says which, so the directions a model
was trained under are read from its own artifact. Version 1 schemas (before per-risk directions:
every direction from the catalog, no risk) still load.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from features.catalog import BY_ID, FEATURE_IDS, UNREPORTED_BY, risk_directions, risk_feature_ids

SCHEMA_VERSION = 2
SMALL_MATRIX = 64  # rows up to which a range check compares every value (the API's households)
READABLE_VERSIONS = (1, 2)


class FeatureSchemaError(ValueError):
    """A frame does not match the schema the model was trained on."""


@dataclass(frozen=True)
class SchemaEntry:
    id: str
    label_zh: str
    unit: str
    dtype: str
    minimum: float | None
    maximum: float | None
    direction: int  # the monotone constraint: +1 more never lowers the risk, -1 never raises it, 0 free
    direction_source: str = "policy"  # "policy" (the catalog's, for every risk) or "risk" (this risk's own)


@dataclass(frozen=True)
class FeatureSchema:
    entries: tuple[SchemaEntry, ...]
    risk: str | None = None  # None: the catalog's directions only (every version 1 schema)

    @classmethod
    def from_catalog(cls, ids: Sequence[str] = FEATURE_IDS, risk: str | None = None) -> FeatureSchema:
        """The catalog's entries for ``ids``; with ``risk``, that risk's directions where policy is silent."""
        own = risk_directions(risk) if risk is not None else {}
        out = []
        for fid in ids:
            if not fid.isascii() or not fid.replace("_", "").isalnum():
                raise FeatureSchemaError(f"feature id {fid!r} must be ASCII letters, digits and _")
            s = BY_ID[fid]
            from_risk = fid in own
            out.append(SchemaEntry(
                id=s.id, label_zh=s.label_zh, unit=s.unit, dtype="float64",
                minimum=None if math.isinf(s.minimum) else s.minimum,
                maximum=None if math.isinf(s.maximum) else s.maximum,
                direction=own[fid] if from_risk else s.direction, direction_source="risk" if from_risk else "policy",
            ))
        return cls(tuple(out), risk=risk)

    @classmethod
    def for_risk(cls, risk: str) -> FeatureSchema:
        """What a model of ``risk`` is trained on: its features, its directions."""
        return cls.from_catalog(risk_feature_ids(risk), risk=risk)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    @property
    def labels(self) -> dict[str, str]:
        return {e.id: e.label_zh for e in self.entries}

    @property
    def monotone_constraints(self) -> list[int]:
        return [e.direction for e in self.entries]

    @property
    def directions(self) -> dict[str, int]:
        return {e.id: e.direction for e in self.entries}

    def to_json(self) -> str:
        return json.dumps({"schema_version": SCHEMA_VERSION, "risk": self.risk,
                           "features": [asdict(e) for e in self.entries]}, ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        doc = json.loads(text)
        if doc.get("schema_version") not in READABLE_VERSIONS:
            raise FeatureSchemaError(f"unsupported feature schema version {doc.get('schema_version')!r}")
        return cls(tuple(SchemaEntry(**e) for e in doc["features"]), risk=doc.get("risk"))

    def validate(self, frame: pd.DataFrame) -> np.ndarray:
        """Checks columns, order, dtype and ranges; returns the float64 matrix in schema order.

        NaN is allowed (missing stays missing); ±inf and values outside a feature's range are not.
        """
        if list(frame.columns) != self.ids:
            missing = [c for c in self.ids if c not in frame.columns]
            extra = [c for c in frame.columns if c not in self.ids]
            raise FeatureSchemaError(
                f"feature columns differ from the schema (missing {missing}, unexpected {extra}"
                + (", or in another order)" if not (missing or extra) else ")"))
        try:
            x = frame.to_numpy(dtype="float64")
        except (TypeError, ValueError) as exc:
            raise FeatureSchemaError(f"features must be numeric: {exc}") from exc
        return self.check_matrix(x)

    @cached_property
    def unreported(self) -> dict[int, int]:
        """Position of each income figure whose 0 may stand for nothing reported → the position of its
        indicator (``features.catalog.UNREPORTED_BY``), where the schema holds both."""
        at = {f: j for j, f in enumerate(self.ids)}
        return {at[f]: at[ind] for f, ind in UNREPORTED_BY.items() if f in at and ind in at}

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([-np.inf if e.minimum is None else e.minimum - 1e-9 for e in self.entries])
        hi = np.array([np.inf if e.maximum is None else e.maximum + 1e-9 for e in self.entries])
        return lo, hi

    def check_matrix(self, x: np.ndarray) -> np.ndarray:
        """``x`` (rows × the schema's features, in its order) if every value is in range or missing;
        otherwise :class:`FeatureSchemaError` naming the first offending feature."""
        problems = self.row_problems(x)
        if problems:
            raise FeatureSchemaError(next(iter(problems.values())))
        return x

    @staticmethod
    def _extremes_fit(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Whether every column's extremes are finite and in range (NaN skipped: missing passes)."""
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no extremes: fine
            mn, mx = np.nanmin(x, axis=0, initial=np.inf), np.nanmax(x, axis=0, initial=-np.inf)
        return not (np.isinf(mn[mn != np.inf]).any() or np.isinf(mx[mx != -np.inf]).any()
                    or (mn < lo).any() or (mx > hi).any())

    def row_problems(self, x: np.ndarray) -> dict[int, str]:
        """Per offending row (position in ``x``), what is wrong with its first offending feature:
        infinite, or outside its range. Empty when all rows are fine (the common case costs two
        comparisons per value; NaN passes)."""
        if x.ndim != 2 or x.shape[1] != len(self.entries):
            raise FeatureSchemaError(f"expected {len(self.entries)} feature columns, got shape {x.shape}")
        lo, hi = self._bounds
        if len(x) > SMALL_MATRIX and self._extremes_fit(x, lo, hi):
            return {}  # a city's matrix: two reductions per column say it all fits, no temporaries
        with np.errstate(invalid="ignore"):
            bad = (x < lo) | (x > hi) | np.isinf(x)
        if not bad.any():
            return {}
        out: dict[int, str] = {}
        for i in np.flatnonzero(bad.any(axis=1)).tolist():
            j = int(np.flatnonzero(bad[i])[0])
            e, v = self.entries[j], x[i, j]
            out[i] = (f"feature {e.id!r} is infinite" if np.isinf(v) else
                      f"feature {e.id!r} below its minimum {e.minimum}" if v < lo[j] else
                      f"feature {e.id!r} above its maximum {e.maximum}")
        return out
