"""The command line explains itself: every stage's --help says what it does, every option its meaning
and default, the risks by name, and the environment variables the stage reads (the service's from
its Settings); `batch` and `worklist` print a few lines for a person and the whole summary as JSON
with --json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import features
from features.risks import RISKS
from relief_risk.cli import build_parser, main
from relief_risk.clihelp import service_settings

# What the issue asks `serve --help` to name; the help itself is generated from serving/settings.py.
SERVE_ENV = ("RELIEF_RISK_API_KEYS", "RELIEF_RISK_AUDIT_URL", "RELIEF_RISK_RISKS", "RELIEF_RISK_MODEL_ALIAS",
             "MLFLOW_TRACKING_URI", "RELIEF_RISK_POLICY_PATH", "RELIEF_RISK_SCORING_THREADS",
             "RELIEF_RISK_MAX_BODY_BYTES", "RELIEF_RISK_MAX_BATCH_BODY_BYTES", "RELIEF_RISK_LOGIN_FAILURES",
             "RELIEF_RISK_KEY_RATE", "RELIEF_RISK_SECURE_COOKIES", "RELIEF_RISK_CHECKPOINT_KEY",
             "RELIEF_RISK_CHECKPOINT_FILE", "RELIEF_RISK_CHECKPOINT_EVERY_RECORDS",
             "RELIEF_RISK_CHECKPOINT_EVERY_SECONDS")


def stages() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def option_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help as --help prints it (defaults filled in), by its longest name."""
    formatter = parser._get_formatter()
    return {max(a.option_strings or [a.dest], key=len): formatter._expand_help(a)
            for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def test_the_top_level_help_lists_every_stage(capsys):
    text = help_of(capsys)
    description = build_parser().description
    assert set(stages()) == {"generate", "train", "promote", "score", "batch", "worklist", "serve", "verify",
                             "keygen", "checkpoint", "purge", "reproduce", "db"}
    for name in stages():
        assert f"relief-risk {name}" in description, name
        assert f"\n    {name} " in text, name  # the stages section: name and what it does


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_stage_says_what_it_does_its_options_and_environment(capsys, name):
    text = help_of(capsys, name)
    parser = stages()[name]
    assert parser.description and len(parser.description) > 40
    assert parser.description.split()[0].strip(".:") in text
    assert "environment variables read:" in text
    for option, helped in option_helps(parser).items():
        assert helped.strip(), f"{name} {option}: no help"
        if option.startswith("--"):
            assert "default" in helped or "(required)" in helped, f"{name} {option}: no default said: {helped}"


def test_risk_options_name_the_five_risks(capsys):
    train = " ".join(help_of(capsys, "train").split())
    assert all(r in train for r in RISKS) and "'all'" in train
    for name in ("promote", "score"):
        text = help_of(capsys, name)
        assert all(r in text for r in RISKS), name
        risk = next(a for a in stages()[name]._actions if a.dest == "risk")
        assert tuple(risk.choices) == RISKS


def test_serve_names_every_setting_it_reads(capsys):
    text = help_of(capsys, "serve")
    environment = text[text.index("environment variables read:"):]
    for env in SERVE_ENV:
        assert f"\n  {env}\n" in environment, env
    for env, described in service_settings():  # every Settings field, described (no drift, no blank)
        assert f"\n  {env}\n" in environment and len(described) > 20, env
    assert "RELIEF_RISK_API_KEYS" in text[:text.index("environment variables read:")]  # needed to start


def test_stages_name_what_they_read(capsys):
    assert "MLFLOW_TRACKING_URI" in help_of(capsys, "train") and "MLFLOW_RUN_ID" in help_of(capsys, "train")
    for name in ("verify", "checkpoint", "purge", "reproduce", "db"):
        assert "\n  RELIEF_RISK_AUDIT_URL\n" in help_of(capsys, name), name
    assert "RELIEF_RISK_CHECKPOINT_KEY" in help_of(capsys, "checkpoint")
    assert "\n  RELIEF_RISK_RETENTION_DAYS\n" in help_of(capsys, "purge")
    assert "environment variables read: none" in help_of(capsys, "generate")


def test_worklist_out_says_what_it_writes(capsys):
    helped = " ".join(option_helps(stages()["worklist"])["--out"].split())
    for written in ("worklist_<town>.csv", "UTF-8 with BOM", "worklist.xlsx", "scores.parquet", "summary.json"):
        assert written in helped, written


# ---- batch and worklist print a summary, or JSON -------------------------------------------------------
@pytest.fixture(scope="module")
def small_city(tmp_path_factory) -> Path:
    from features.io import write_tables
    from synthcity import generate_city

    out = tmp_path_factory.mktemp("cli_city")
    write_tables(generate_city(2000, seed=3).tables(), out)
    return out


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_batch_prints_a_summary_and_json(trained, small_city, tmp_path, capsys):
    out = tmp_path / "batch"
    lines = run(capsys, "batch", "--data", str(small_city), "--out", str(out), "--no-progress").splitlines()
    flagged = int(pq.read_table(out / "scores.parquet").to_pandas()["illness_poverty__flagged"].sum())
    assert len(lines) == 6, lines
    assert lines[0].startswith("batch as of ") and "2,000 households scored by illness_poverty v" in lines[0]
    assert lines[1].startswith(f"flagged: illness_poverty {flagged:,}; any risk {flagged:,}")
    assert lines[2].startswith("list changes: none counted, no previous run")
    assert lines[3].startswith("drift against training (drift.json): illness_poverty score PSI ")
    assert lines[4] == f"files: {out}/{{scores.parquet, explanations.parquet, summary.json, drift.json}}"
    assert lines[5].startswith("time: ") and " s, peak memory " in lines[5]

    printed = json.loads(run(capsys, "batch", "--data", str(small_city), "--out", str(out), "--no-progress",
                             "--json"))
    assert printed == json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert printed["households"] == 2000 and printed["flagged"] == {"illness_poverty": flagged}

    # --policy's [monitoring] is the one the drift report reads: thresholds that every PSI passes
    strict = tmp_path / "policy.toml"
    text = (Path(features.__file__).parent / "policy_parameters.toml").read_text(encoding="utf-8")
    strict.write_text(text.replace("psi_watch = 0.1\npsi_act = 0.25", "psi_watch = 1e-9\npsi_act = 2e-9"),
                      encoding="utf-8")
    run(capsys, "batch", "--data", str(small_city), "--out", str(tmp_path / "strict"), "--no-progress",
        "--policy", str(strict))
    report = json.loads((tmp_path / "strict" / "drift.json").read_text(encoding="utf-8"))["risks"]["illness_poverty"]
    assert report["thresholds"]["psi_watch"] == 1e-9
    assert {f["status"] for f in report["features"] if f["psi"]} == {"act"}


@pytest.mark.slow
def test_worklist_prints_a_summary_and_json(trained, small_city, tmp_path, capsys):
    out = tmp_path / "worklist"
    lines = run(capsys, "worklist", "--data", str(small_city), "--out", str(out), "--capacity", "5",
                "--no-progress").splitlines()
    csvs = sorted(out.glob("worklist_*.csv"))
    listed = sum(len(pd.read_csv(p, encoding="utf-8-sig")) for p in csvs)
    assert len(lines) == 9, lines
    assert lines[0].startswith("batch as of ") and lines[1].startswith("flagged: illness_poverty ")
    assert lines[2].startswith("list changes: ") and lines[3].startswith("drift against training")
    assert lines[5].startswith(f"worklist: {listed:,} households to visit in {len(csvs)} towns")
    assert lines[6] == (f"worklist files: {out / 'worklist.xlsx'} and {out / 'worklist_<town>.csv'} ({len(csvs)} "
                        "towns, UTF-8 with BOM)")
    assert lines[7].startswith("overdue plan measures: skipped, no store given")
    assert lines[8].startswith("time: ") and "(batch " in lines[8]

    printed = json.loads(run(capsys, "worklist", "--data", str(small_city), "--out", str(out), "--capacity", "5",
                             "--no-progress", "--json"))
    assert set(printed) == {"batch", "excel", "csv", "listed", "overdue"}
    assert printed["excel"] == str(out / "worklist.xlsx") and sum(printed["listed"].values()) == listed
    assert sorted(printed["csv"].values()) == [str(p) for p in csvs]
