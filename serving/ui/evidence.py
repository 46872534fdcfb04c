"""What a training run logged to MLflow about its model, read back for the model page.

Every run logs ``evaluation/global_importance.json``, ``evaluation/calibration.csv``,
``evaluation/model_vs_rules.csv``, ``evaluation/rules.json`` and ``plots/*.png``
(``training/registry.py``; the names are in ``models/run_artifacts.py``); newer runs add a
fairness table (``fairness/*.csv``) and a model card (``model_card.md`` / ``model_card.html``).
Anything a run did not log comes back as None and the page says "not logged for this version"; a
file that cannot be read is named in ``problems``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from models import run_artifacts as artifacts

log = logging.getLogger("relief_risk.serving.ui")

MAX_ARTIFACT_BYTES = 5 * 1024 * 1024
MAX_TABLE_ROWS = 500
PLOTS = {artifacts.PLOT_RECALL_AT_CAPACITY: "同等走访能力下的发现率 recall at capacity",
         artifacts.PLOT_CALIBRATION: "校准曲线（训练时绘制）",
         artifacts.PLOT_GLOBAL_IMPORTANCE: "全局重要性（训练时绘制）"}
METRICS = {  # the run's figures worth a glance, in this order: (label, count | share | points | score)
    "test_households": ("测试期家庭数", "count"), "test_positives": ("测试期核实发现数", "count"),
    "test_brier": ("Brier 分数", "score"), "test_ece": ("期望校准误差 ECE", "score"),
    "test_model_roc_auc": ("ROC-AUC", "score"), "test_model_pr_auc": ("PR-AUC", "score"),
    "test_recall_gain_over_best_rule": ("召回率较最佳规则", "points"),
    "test_visited_share": ("测试期走访比例", "share"),
    "train_rows": ("训练样本数", "count"), "train_positives": ("训练正例数", "count"),
}


@dataclass
class Table:
    name: str
    header: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)  # per column: every filled cell a number
    truncated: bool = False


@dataclass
class Evidence:
    run_id: str
    artifacts: list[str] = field(default_factory=list)
    importance: dict[str, float] | None = None
    calibration: list[dict[str, float]] | None = None
    comparison: list[dict[str, Any]] | None = None
    truth_comparison: list[dict[str, Any]] | None = None
    rules: dict[str, str] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)  # artifact path -> data: URI
    fairness: list[Table] | None = None
    model_card_md: str | None = None
    model_card_html: bool = False
    metrics: list[tuple[str, str, str, float]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class VersionRow:
    version: str
    aliases: list[str]
    run_id: str | None
    created_ms: int | None
    status: str
    description: str


def registered_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    """All registered versions of ``name``, newest first, each with its aliases. ``name`` must be a
    served model's name (the caller checks), so it is safe inside the filter string."""
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = [VersionRow(version=str(mv.version), aliases=sorted(aliases.get(str(mv.version), [])), run_id=mv.run_id,
                       created_ms=mv.creation_timestamp, status=str(mv.status or ""), description=mv.description or "")
            for mv in client.search_model_versions(f"name='{name}'")]
    return sorted(rows, key=lambda r: int(r.version) if r.version.isdigit() else 0, reverse=True)


def _read(client: MlflowClient, run_id: str, path: str, tmp: Path) -> bytes:
    local = Path(client.download_artifacts(run_id, path, str(tmp)))
    if local.stat().st_size > MAX_ARTIFACT_BYTES:
        raise ValueError(f"{path} is larger than {MAX_ARTIFACT_BYTES} bytes")
    return local.read_bytes()


def _list(client: MlflowClient, run_id: str, path: str | None = None, depth: int = 2) -> list[str]:
    out = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir and depth > 0:
            out += _list(client, run_id, f.path, depth - 1)
        elif not f.is_dir:
            out.append(f.path)
    return out


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _cell(text: str) -> str:
    """Counts as they are, other numbers to 4 decimals, NaN as a dash, words untouched."""
    try:
        v = float(text)
    except ValueError:
        return text
    if v != v:
        return "—"
    return text.strip() if text.strip().lstrip("-").isdigit() else f"{v:.4f}"


def _table(name: str, data: bytes) -> Table:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows:
        return Table(name=name, header=[], rows=[])
    body = rows[1:]
    numeric = [all(_is_number(r[j]) for r in body if j < len(r) and r[j].strip()) for j in range(len(rows[0]))]
    return Table(name=name, header=rows[0], rows=[[_cell(c) for c in r] for r in body[:MAX_TABLE_ROWS]],
                 numeric=numeric, truncated=len(body) > MAX_TABLE_ROWS)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _comparison(data: bytes, rules: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for r in _csv_rows(data):
        scorer = r.get("") or r.get("scorer") or r.get("Unnamed: 0") or ""
        rule = scorer.removeprefix("rule:")
        label = "模型 model" if scorer == "model" else (f"{rules[rule]}" if rule in rules else scorer)
        out.append({"scorer": scorer, "label": label, "is_model": scorer == "model",
                    **{k: float(r[k]) for k in ("roc_auc", "pr_auc", "found", "recall", "precision") if r.get(k)}})
    return out


def run_evidence(client: MlflowClient, run_id: str) -> Evidence:
    ev = Evidence(run_id=run_id)
    try:
        run = client.get_run(run_id)
        ev.params = dict(run.data.params)
        ev.metrics = [(k, zh, kind, float(run.data.metrics[k])) for k, (zh, kind) in METRICS.items()
                      if k in run.data.metrics]
        ev.artifacts = _list(client, run_id)
    except Exception as exc:  # MLflow down or the run deleted: the page still shows what the service knows
        log.warning("MLflow run %s unreadable: %s", run_id, type(exc).__name__)
        ev.problems.append(f"MLflow 无法读取该运行（{type(exc).__name__}）")
        return ev
    have = set(ev.artifacts)
    with tempfile.TemporaryDirectory(prefix="relief-risk-ui-") as tmp_name:
        tmp = Path(tmp_name)

        def read(path: str) -> bytes | None:
            if path not in have:
                return None
            try:
                return _read(client, run_id, path, tmp)
            except Exception as exc:
                ev.problems.append(f"{path} 无法读取（{type(exc).__name__}）")
                return None

        if (data := read(artifacts.RULES)) is not None:
            ev.rules = {str(k): str(v) for k, v in json.loads(data).items()}
        if (data := read(artifacts.GLOBAL_IMPORTANCE)) is not None:
            ev.importance = {str(k): float(v) for k, v in json.loads(data).items()}
        if (data := read(artifacts.CALIBRATION)) is not None:
            ev.calibration = [{k: float(v) for k, v in r.items() if k and v != ""} for r in _csv_rows(data)]
        if (data := read(artifacts.MODEL_VS_RULES)) is not None:
            ev.comparison = _comparison(data, ev.rules)
        if (data := read(artifacts.MODEL_VS_RULES_TRUTH)) is not None:
            ev.truth_comparison = _comparison(data, ev.rules)
        for path in PLOTS:
            if (data := read(path)) is not None:
                ev.plots[path] = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        fairness = sorted(p for p in have if p.startswith(artifacts.FAIRNESS_DIR) and p.endswith(".csv"))
        if fairness:
            ev.fairness = [_table(p.removeprefix(artifacts.FAIRNESS_DIR), d) for p in fairness
                           if (d := read(p)) is not None]
        if (data := read(artifacts.MODEL_CARD_MD)) is not None:
            ev.model_card_md = data.decode("utf-8", errors="replace")
        ev.model_card_html = artifacts.MODEL_CARD_HTML in have
    return ev


def model_card_html(client: MlflowClient, run_id: str) -> str | None:
    if artifacts.MODEL_CARD_HTML not in {f.path for f in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory(prefix="relief-risk-ui-") as tmp:
        return _read(client, run_id, artifacts.MODEL_CARD_HTML, Path(tmp)).decode("utf-8", errors="replace")
