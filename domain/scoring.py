"""From a validated bundle to scores, explanations and audit records, with the same feature code
as training (``features.build_features``) and the models exactly as registered."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from domain.advice import Advisor
from domain.bundle import Bundle
from domain.loader import LoadedModel
from features.build import build_features
from features.policy import PolicyBook
from features.tables import tables_from_bundle
from store.audit import AuditRecord


@dataclass
class Scored:
    response: dict[str, Any]
    record: AuditRecord


@dataclass
class Scorer:
    models: list[LoadedModel]
    policy: PolicyBook
    advisor: Advisor | None = None  # lists, eligibility and warm list beside the scores

    def score(self, bundle: Bundle, kind: str = "score") -> Scored:
        raw = bundle.model_dump(mode="json")
        tables = tables_from_bundle(raw)
        feats = build_features(tables, raw["as_of"], self.policy)
        request_id = uuid.uuid4().hex
        public, full = [], []
        for lm in self.models:
            row = lm.model.score_rows(feats)[0]
            ref = {"name": lm.name, "version": lm.version}
            public.append({
                "risk": lm.model.risk, "probability": row["probability"], "band": row["band"],
                "flagged": row["flagged"], "model": ref, "base_value": row["base_value"], "reasons": row["reasons"],
            })
            full.append({**public[-1], "raw_score": row["raw_score"], "contributions": row["contributions"],
                         "features": {k: (None if pd.isna(v) else float(v)) for k, v in feats.iloc[0].items()}})
        response = {"request_id": request_id, "household_id": raw["household"]["household_id"],
                    "as_of": raw["as_of"], "scores": public}
        if self.advisor is not None:
            advice = self.advisor.advise(tables, feats, raw["as_of"], public)
            response |= {"lists": advice.lists, "eligible_programs": advice.eligible_programs,
                         "warm_list": advice.warm_list}
        record = AuditRecord(
            request_id=request_id, created_at=dt.datetime.now(dt.UTC), kind=kind,
            household_id=raw["household"]["household_id"], as_of=raw["as_of"],
            models=[{"name": m.name, "version": m.version} for m in self.models],
            request=raw, scores=full, response=response,
        )
        return Scored(response=response, record=record)
