"""The README's benchmark table is the rendering of the stored figures (``make bench`` writes both),
it names every target of the issue beside ours, the reference and the ratio, and the bench's load
generator reads HTTP/1.1 answers of both framings."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys

from tests.conftest import ROOT


def _module(name: str):
    """A benchmark script as a module (``benchmarks/`` is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _bench():
    return _module("bench")


def test_readme_table_matches_latest_json():
    bench = _bench()
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0].strip()
    assert block == bench.render(results).strip()


TARGET_NEEDLES = ("`mlflow models serve`", "MLServer", "2 workers vs 1 worker", "in-process floor",
                  "`/v1/score/batch` households/s", "≥ 4×", "≥ 0.5×", "≥ 1.5×", "≤ 2×", "≥ 20×")


def test_render_names_every_measurement_and_its_target():
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    table = _bench().render(results)
    for needle in ("/v1/score", "Booster.predict", "pred_contrib", "shap.TreeExplainer", "whole-city features",
                   "nightly batch", "lightgbm.train", "peak memory", *TARGET_NEEDLES):
        assert needle in table, needle
    assert "Stages that failed" not in table


def _server(rps: float, cpu: float, rps1: float = 10.0) -> dict:
    return {"rps_8_clients": rps, "rps_1_client": rps1, "p50_ms_1_client": 5.0, "p99_ms_1_client": 9.0,
            "p50_ms_8_clients": 40.0, "p99_ms_8_clients": 80.0, "server_cpu_ms_per_request": cpu,
            "client_cpu_ms_per_request": 0.2, "peak_mb": 500.0}


def test_targets_are_ours_over_the_reference_beside_the_bound():
    bench = _bench()
    res = {"floor": {"cpu_mean_ms": 4.0, "mean_ms": 4.2, "median_ms": 3.5},
           "api": {"servers": {"ours_5_risks_1_worker": _server(120.0, 10.0, rps1=50.0),
                               "ours_5_risks_2_workers": _server(200.0, 11.0),
                               "ours_1_risk_1_worker": _server(300.0, 4.0),
                               "mlflow_1_worker": _server(30.0, 30.0), "mlflow_2_workers": _server(40.0, 30.0),
                               "mlserver": {**_server(400.0, 2.0), "versions": {"mlserver": "1.7.1"}}},
                   "batch": {"requests": 3, "households_per_s": 1200.0}}}
    t = bench.compare(res)
    assert (t["rps_vs_mlflow"]["ratio"], t["rps_vs_mlflow"]["met"]) == (4.0, True)
    assert (t["rps_vs_mlserver"]["ratio"], t["rps_vs_mlserver"]["met"]) == (0.3, False)
    assert (t["two_workers_vs_one"]["ratio"], t["two_workers_vs_one"]["met"]) == (1.67, True)
    assert (t["server_cpu_vs_floor"]["ratio"], t["server_cpu_vs_floor"]["met"]) == (2.5, False)
    assert (t["batch_vs_single"]["ratio"], t["batch_vs_single"]["met"]) == (24.0, True)
    table = bench.render(res)
    assert "| 120.0 | 30.0 | 4.0× | ≥ 4× |" in table
    assert "| 10.0 | 4.0 | 2.5× | ≤ 2× |" in table
    assert "MLServer 1.7.1" in table and "Stages that failed" not in table
    for needle in TARGET_NEEDLES:
        assert needle in table, needle


def test_a_peer_that_failed_is_named_and_its_ratio_left_blank():
    bench = _bench()
    res = {"api": {"servers": {"ours_5_risks_1_worker": _server(120.0, 10.0),
                               "mlserver": {"error": "RuntimeError: pip install mlserver failed"}}}}
    assert bench.compare(res)["rps_vs_mlserver"] | {"what": ""} == {
        "what": "", "ours": 120.0, "reference": None, "ratio": None, "target": ">= 0.5", "met": None}
    table = bench.render(res)
    assert "Stages that failed: api mlserver: RuntimeError: pip install mlserver failed" in table
    assert bench.failures(res) == {"api mlserver": "RuntimeError: pip install mlserver failed"}


def test_load_generator_reads_content_length_and_chunked_answers():
    load = _module("_load")

    async def read(raw: bytes):
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await load.read_response(reader), await reader.read()

    fixed = b'HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-type: application/json\r\n\r\n{"a":1}NEXT'
    assert asyncio.run(read(fixed)) == ((200, b'{"a":1}', True), b"NEXT")
    chunked = (b"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"3\r\n{\"a\r\n4;ext=1\r\n\":1}\r\n0\r\nX-Trailer: t\r\n\r\nNEXT")
    assert asyncio.run(read(chunked)) == ((422, b'{"a":1}', False), b"NEXT")
    closed = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
    assert asyncio.run(read(closed)) == ((200, b"until the end", False), b"")
    request = load.encode_posts("127.0.0.1", 8000, "/v1/score", [b"{}"], {"Content-Type": "application/json"})[0]
    assert request == (b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 2\r\n\r\n{}")
