"""The feature schema a model was trained on: ordered ASCII ids, dtypes, ranges, Chinese labels and
the direction policy fixes. It is saved beside every model and checked on both paths, so serving can
never feed a model columns in another order or of another meaning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from features.catalog import BY_ID, FEATURE_IDS

SCHEMA_VERSION = 1


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
    direction: int


@dataclass(frozen=True)
class FeatureSchema:
    entries: tuple[SchemaEntry, ...]

    @classmethod
    def from_catalog(cls, ids: Sequence[str] = FEATURE_IDS) -> FeatureSchema:
        out = []
        for fid in ids:
            if not fid.isascii() or not fid.replace("_", "").isalnum():
                raise FeatureSchemaError(f"feature id {fid!r} must be ASCII letters, digits and _")
            s = BY_ID[fid]
            out.append(SchemaEntry(
                id=s.id, label_zh=s.label_zh, unit=s.unit, dtype="float64",
                minimum=None if math.isinf(s.minimum) else s.minimum,
                maximum=None if math.isinf(s.maximum) else s.maximum, direction=s.direction,
            ))
        return cls(tuple(out))

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    @property
    def labels(self) -> dict[str, str]:
        return {e.id: e.label_zh for e in self.entries}

    @property
    def monotone_constraints(self) -> list[int]:
        return [e.direction for e in self.entries]

    def to_json(self) -> str:
        return json.dumps({"schema_version": SCHEMA_VERSION, "features": [asdict(e) for e in self.entries]},
                          ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        doc = json.loads(text)
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise FeatureSchemaError(f"unsupported feature schema version {doc.get('schema_version')!r}")
        return cls(tuple(SchemaEntry(**e) for e in doc["features"]))

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
        if np.isinf(x).any():
            col = self.ids[int(np.argwhere(np.isinf(x))[0][1])]
            raise FeatureSchemaError(f"feature {col!r} is infinite")
        for j, e in enumerate(self.entries):
            col = x[:, j]
            finite = col[~np.isnan(col)]
            if e.minimum is not None and (finite < e.minimum - 1e-9).any():
                raise FeatureSchemaError(f"feature {e.id!r} below its minimum {e.minimum}")
            if e.maximum is not None and (finite > e.maximum + 1e-9).any():
                raise FeatureSchemaError(f"feature {e.id!r} above its maximum {e.maximum}")
        return x
