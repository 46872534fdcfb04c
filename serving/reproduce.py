"""Re-scores an audit record with the very model versions that scored it, from what it received,
and compares: the probability, raw score, base value and every contribution must be identical."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from features.policy import PolicyBook
from models.pyfunc import load_risk_model
from serving.audit import AuditRecord
from serving.schemas import Bundle
from serving.scoring import LoadedModel, Scorer

COMPARED = ("probability", "band", "flagged", "base_value", "raw_score", "contributions", "reasons", "features")


@dataclass(frozen=True)
class Difference:
    risk: str
    field: str
    stored: object
    now: object


def reproduce(record: AuditRecord, policy: PolicyBook) -> list[Difference]:
    """The differences between the stored scores and a fresh scoring (empty when identical)."""
    client = MlflowClient()
    models = []
    for m in record.models:
        uri = f"models:/{m['name']}/{m['version']}"
        model, facts = load_risk_model(uri)
        mv = client.get_model_version(m["name"], m["version"])
        models.append(LoadedModel(name=m["name"], version=str(m["version"]), aliases=list(mv.aliases), model=model,
                                  uri=uri, run_id=facts.get("run_id")))
    scored = Scorer(models=models, policy=policy).score(Bundle.model_validate(record.request))
    diffs = []
    for stored, now in zip(record.scores, scored.record.scores, strict=True):
        for field in COMPARED:
            if stored.get(field) != now.get(field):
                diffs.append(Difference(stored["risk"], field, stored.get(field), now.get(field)))
    return diffs
