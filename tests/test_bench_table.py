"""The README's benchmark table is the rendering of the stored figures (``make bench`` writes both)."""

from __future__ import annotations

import importlib.util
import json

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_matches_latest_json():
    bench = _bench()
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0].strip()
    assert block == bench.render(results).strip()


def test_render_names_every_measurement_and_its_target():
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    table = _bench().render(results)
    for needle in ("/v1/score", "Booster.predict", "pred_contrib", "shap.TreeExplainer", "whole-city features",
                   "nightly batch", "lightgbm.train", "peak memory"):
        assert needle in table, needle
    assert "Stages that failed" not in table
