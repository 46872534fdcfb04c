"""Where a training run's evidence lies among its MLflow artifacts, by name: training writes there
(``training/registry.py``, ``training/report.py``, ``training/pipeline.py``) and the auditor's model
pages read there (``serving/ui/evidence.py``). One list, so neither side can move a file the other
still looks for."""

from __future__ import annotations

MODEL_VS_RULES = "evaluation/model_vs_rules.csv"
MODEL_VS_RULES_TRUTH = "evaluation/model_vs_rules_latent_truth.csv"
RULES = "evaluation/rules.json"
CALIBRATION = "evaluation/calibration.csv"
GLOBAL_IMPORTANCE = "evaluation/global_importance.json"

PLOT_CALIBRATION = "plots/calibration.png"
PLOT_RECALL_AT_CAPACITY = "plots/recall_at_capacity.png"
PLOT_GLOBAL_IMPORTANCE = "plots/global_importance.png"

FAIRNESS_DIR = "fairness/"
FAIRNESS_GROUPS = FAIRNESS_DIR + "groups.csv"
FAIRNESS_GAPS = FAIRNESS_DIR + "gaps.csv"
FAIRNESS_TPR_PLOT = FAIRNESS_DIR + "tpr_by_group.png"

DRIFT_REFERENCE = "monitoring/reference.json"  # also inside the model (model_meta.json "reference")
DRIFT_REFERENCES = "monitoring/references_by_month.json"  # one per calendar month (model_meta.json "references")

MODEL_CARD_MD = "model_card.md"
MODEL_CARD_HTML = "model_card.html"
