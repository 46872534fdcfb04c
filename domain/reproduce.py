"""Re-scores an audit record with the very model versions that scored it, from what it received,
and compares: the probability, raw score, base value and every contribution must be identical."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from domain.bundle import Bundle
from domain.loader import load_version
from domain.scoring import Scored, Scorer
from features.policy import PolicyBook
from store.audit import AuditRecord

COMPARED = ("probability", "band", "flagged", "base_value", "raw_score", "contributions", "reasons", "features")


class RecordPurged(ValueError):
    """The record's payload (what it received, its scores, its response) was purged: nothing to re-score."""

    def __init__(self, record: AuditRecord) -> None:
        assert record.purged_at is not None
        self.request_id, self.purged_at = record.request_id, record.purged_at
        super().__init__(f"audit record {record.request_id} was purged on {record.purged_at.date().isoformat()} "
                         f"({record.purged_at.strftime('%H:%M:%S')} UTC): what it received, its scores and its "
                         "response are gone, so it cannot be re-scored; its place in the hash chain, time, "
                         "household, model versions and whether it flagged remain")


@dataclass(frozen=True)
class Difference:
    risk: str
    field: str
    stored: object
    now: object


TOLERANCE = 1e-12  # TreeSHAP summed in another order (pred_contrib vs models.fast_shap) differs by ~1e-15


def same(a: object, b: object) -> bool:
    """Equal, numbers to ``TOLERANCE``: explanations computed by LightGBM's ``pred_contrib`` (older
    records) and by ``models.fast_shap`` agree to rounding, not always to the last bit."""
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool | str):
        return abs(float(a) - float(b)) <= TOLERANCE
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def reproduce(record: AuditRecord, policy: PolicyBook) -> list[Difference]:
    """The differences between the stored scores and a fresh scoring (empty when identical); raises
    :class:`RecordPurged` for a record whose payload was purged."""
    if record.purged_at is not None:
        raise RecordPurged(record)
    client = MlflowClient()
    models = [load_version(m["name"], str(m["version"]), client) for m in record.models]
    Bundle.model_validate(record.request)  # held to the same rules as when it was received
    scored = Scorer(models=models, policy=policy).score(record.request)
    if not isinstance(scored, Scored):
        return [Difference("*", "features", "scored", f"not scorable now: {scored.message}")]
    diffs = []
    for stored, now in zip(record.scores, scored.scores, strict=True):
        for field in COMPARED:
            if not same(stored.get(field), now.get(field)):
                diffs.append(Difference(stored["risk"], field, stored.get(field), now.get(field)))
    return diffs
