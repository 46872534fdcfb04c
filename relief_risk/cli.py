"""relief-risk: finds households sliding into hardship for the civil-affairs bureau, one subcommand per
stage. `relief-risk STAGE --help` says what a stage does, each option with its default, and the
environment variables it reads.

    relief-risk generate --households 5000 --out data/city      # a synthetic city's raw tables
    relief-risk train --data data/city --risk all                # fit, evaluate, log and register in MLflow
    relief-risk promote --risk illness_poverty --version 3 --data data/city   # gate, then move champion
    relief-risk score --data data/city --as-of 2026-09-30 --out data/scores.parquet   # one risk, as of a date
    relief-risk batch --data data/city --out out/2026-10-31      # nightly: every household, every risk
    relief-risk worklist --data data/city --out out/2026-10-31   # the batch, then each town's visit list
    relief-risk serve --port 8000                                # the API (RELIEF_RISK_API_KEYS)
    relief-risk verify                      # the audit trail's and the access log's hash chains
    relief-risk verify --checkpoint /var/lib/relief-risk-checkpoints/checkpoints.jsonl --public-key checkpoint.pub
    relief-risk keygen --out /etc/relief-risk/checkpoint        # the checkpoints' signing key pair
    relief-risk checkpoint --key KEY --out FILE                 # sign both chain heads now
    relief-risk purge --dry-run             # records past the retention period: what would be emptied
    relief-risk reproduce REQUEST_ID        # re-score an audit record with its own model versions
    relief-risk db upgrade                  # the audit store's schema to this code's
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path

log = logging.getLogger("relief_risk")


def _generate(a: argparse.Namespace) -> int:
    from features.io import write_tables
    from synthcity import generate_city

    t0 = time.perf_counter()
    city = generate_city(a.households, end_month=a.end_month, n_months=a.months, seed=a.seed, progress=True)
    frames = {**city.tables(), "truth": city.truth}
    write_tables(frames, a.out, fmt=a.format)
    counts = {k: len(v) for k, v in frames.items()}
    log.info("wrote %s to %s in %.1fs", counts, a.out, time.perf_counter() - t0)
    print(json.dumps({"out": str(a.out), "rows": counts, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


def _train(a: argparse.Namespace) -> int:
    from training.pipeline import RISKS, TrainConfig, describe, train, train_all
    from training.promote import load_bounds

    feedback = None
    if a.feedback_url:
        from sqlalchemy.engine import make_url

        from store.feedback import feedback_verifications
        from training.feedback import FeedbackLabels

        feedback = FeedbackLabels(feedback_verifications(a.feedback_url),
                                  source=make_url(a.feedback_url).render_as_string(hide_password=True))

    risks = list(RISKS) if a.risk.strip() == "all" else [r.strip() for r in a.risk.split(",") if r.strip()]
    if not risks or any(r not in RISKS for r in risks) or len(set(risks)) != len(risks):
        print(f"--risk: expected 'all' or distinct risks among {', '.join(RISKS)} (comma-separated), got {a.risk!r}",
              file=sys.stderr)
        return 2
    config = TrainConfig(data_dir=a.data, risk=risks[0], capacity=a.capacity, seed=a.seed,
                         alias=None if a.no_register else a.alias, policy_path=a.policy, gate=load_bounds(a.gate),
                         feedback=feedback)
    if len(risks) == 1:
        result = train(config)
        print(describe(result))
        print(result.comparison.to_string())
        return 0
    outcome = train_all(config, risks)
    for risk, result in outcome.results.items():
        print(f"== {risk}")
        print(describe(result))
        print(result.comparison.to_string())
    summary = [{"risk": r, "version": res.version, "model_recall": res.comparison.loc["model", "recall"],
                "best_rule_recall": res.comparison.drop(index="model")["recall"].max(),
                "model_roc_auc": res.comparison.loc["model", "roc_auc"]} for r, res in outcome.results.items()]
    print(json.dumps({"trained": summary, "skipped": outcome.skipped}, indent=2, default=float))
    return 1 if outcome.skipped else 0


def _promote(a: argparse.Namespace) -> int:
    import datetime as dt

    from mlflow.tracking import MlflowClient

    from training.promote import decide, evidence_from_data, load_bounds

    evidence = evidence_from_data(a.data, a.risk, a.capacity, a.policy)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    decision = decide(MlflowClient(), a.risk, str(a.version), evidence, load_bounds(a.gate),
                      artifact=f"promotion/decision-{stamp}.json")
    verdict = "PROMOTED" if decision.promote else "REFUSED"
    print(f"{verdict}: {a.risk} version {a.version} on the later period {evidence.as_of.date()} of {a.data}",
          file=sys.stdout if decision.promote else sys.stderr)
    for reason in decision.reasons:
        print(f"  {reason}", file=sys.stdout if decision.promote else sys.stderr)
    return 0 if decision.promote else 1


def _score(a: argparse.Namespace) -> int:
    from domain.loader import load_served
    from features.build import build_features
    from features.io import load_policy_book, read_tables

    policy = load_policy_book(a.policy)
    tables = read_tables(a.data, policy=policy)
    feats = build_features(tables, a.as_of, policy)
    (served,), _ = load_served([a.risk], a.alias, required=True, warm=False)
    out = served.model.predict_frame(feats)
    out.insert(0, "risk", a.risk)
    out.insert(1, "model_version", served.version)
    out["as_of"] = a.as_of
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    out.reset_index().to_parquet(a.out, index=False)
    print(json.dumps({"out": a.out, "households": len(out), "flagged": int(out["flagged"].sum()),
                      "model": {"name": served.name, "version": served.version}}))
    return 0


def _serve(a: argparse.Namespace) -> int:
    from relief_risk.serve import serve
    from serving.settings import Settings

    if not os.environ.get("RELIEF_RISK_API_KEYS"):
        if not a.demo_keys:
            print("RELIEF_RISK_API_KEYS is not set; the service never starts open. Set it to role:key pairs "
                  "(platform, auditor, admin), or pass --demo-keys to generate keys for a demo.", file=sys.stderr)
            return 2
        # hex: a key that began with "-" would read as an option on a command line
        keys = {role: secrets.token_hex(24) for role in ("platform", "auditor", "admin")}
        os.environ["RELIEF_RISK_API_KEYS"] = ",".join(f"{r}:{k}" for r, k in keys.items())
        path = Path(".demo_keys")
        path.write_text("".join(f"{r}={k}\n" for r, k in keys.items()), encoding="utf-8")
        path.chmod(0o600)
        print("Generated demo API keys (also in .demo_keys, readable by you only):")
        for r, k in keys.items():
            print(f"  {r:9s} {k}")
        print(f"Try: python3 checks/contract_check.py --url http://{a.host}:{a.port} "
              f"--platform-key={keys['platform']} --auditor-key={keys['auditor']}", flush=True)
    settings = Settings()  # fail here, before starting workers, if the settings are wrong
    return serve(a.host, a.port, a.workers, log_level="debug" if a.verbose else "info",
                 log_format=settings.log_format)


def _audit_store(a: argparse.Namespace):
    from relief_risk.audit_commands import audit_store

    return audit_store(a)


def _reproduce(a: argparse.Namespace) -> int:
    from domain.reproduce import RecordPurged, reproduce
    from features.io import load_policy_book

    record = _audit_store(a).get(a.request_id)
    if record is None:
        print(f"no audit record {a.request_id}", file=sys.stderr)
        return 2
    try:
        diffs = reproduce(record, load_policy_book(a.policy))
    except RecordPurged as exc:
        print(f"PURGED: {exc}", file=sys.stderr)
        return 3
    models = ", ".join(f"{m['name']} v{m['version']}" for m in record.models)
    if not diffs:
        print(f"IDENTICAL: {a.request_id} re-scored with {models}: probability, raw score, base value, "
              f"all {sum(len(s['contributions']) for s in record.scores)} contributions and reasons match "
              "(numbers to 1e-12)")
        return 0
    for d in diffs[:20]:
        print(f"DIFFERS {d.risk}.{d.field}: stored {str(d.stored)[:80]} now {str(d.now)[:80]}", file=sys.stderr)
    return 1


def _db(a: argparse.Namespace) -> int:
    """The store's schema: ``upgrade`` does what every start-up does (migrations to head, then the
    chain head), so it can run once before the workers; ``current`` shows the database's revision."""
    from store.migrate import SchemaError, current, head_revision

    store = _audit_store(a)
    try:
        before, head = current(store.engine), head_revision()
        if a.action == "current":
            if before is None:
                print(f"none (empty, or made before migrations); this code's head is {head}")
            elif before == head:
                print(f"{before} (head)")
            else:
                print(f"{before} (this code's head is {head})")
            return 0
        try:
            store.create()
        except SchemaError as exc:
            print(exc, file=sys.stderr)
            return 1
        after = current(store.engine)
        print(f"already at {after} (head)" if after == before
              else f"upgraded from {before or 'none'} to {after} (head)")
        return 0
    finally:
        store.dispose()


def build_parser() -> argparse.ArgumentParser:
    from features.risks import RISKS
    from relief_risk.audit_commands import AUDIT_URL_HELP, add_audit_parsers
    from relief_risk.batch_commands import add_batch_parser, add_worklist_parser
    from relief_risk.clihelp import (
        MLFLOW_RUN_ID,
        MLFLOW_TRACKING_URI,
        PORT,
        Formatter,
        environment,
        risks_help,
        service_settings,
        setting,
    )

    p = argparse.ArgumentParser(prog="relief-risk", description=__doc__, formatter_class=Formatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True, title="stages", metavar="STAGE")

    g = sub.add_parser("generate", help="write a synthetic city's raw tables", formatter_class=Formatter,
                       description="Writes the six contract tables of a synthetic city (households, persons, income, "
                                   "claims, assistance, verifications) and its latent truth (for honest evaluation "
                                   "only) into a folder: made-up data to try every other stage on.",
                       epilog=environment())
    g.add_argument("--households", type=int, default=5000, help="households in the city")
    g.add_argument("--months", type=int, default=36, help="months of history, ending with --end-month")
    g.add_argument("--end-month", default="2026-10", metavar="YYYY-MM", help="the last month of the data")
    g.add_argument("--seed", type=int, default=0, help="random seed: the same seed, the same city")
    g.add_argument("--out", default="data/city", metavar="DIR", help="folder for the tables (made if missing)")
    g.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format of the tables")
    g.set_defaults(func=_generate)

    t = sub.add_parser("train", help="fit, evaluate against the rules, log and register in MLflow",
                       formatter_class=Formatter,
                       description="Builds point-in-time snapshots, splits them by time, fits LightGBM with the "
                                   "risk's monotone constraints, calibrates, evaluates the model against today's "
                                   "rules at the same capacity and across groups, logs all of it to MLflow and "
                                   "registers the model (the promotion gate decides whether it becomes the "
                                   "champion). Under `mlflow run` it logs into the run mlflow opened.",
                       epilog=environment(MLFLOW_TRACKING_URI, MLFLOW_RUN_ID))
    t.add_argument("--data", default="data/city", metavar="DIR", help="folder of the raw tables (parquet or CSV)")
    t.add_argument("--risk", default="illness_poverty",
                   help=risks_help(with_all=True) + ". Several share one read of the data and one set of "
                        "snapshots, each gets its own run and model; exit 1 if one had too few findings to train")
    t.add_argument("--capacity", type=float, default=0.02,
                   help="share of households caseworkers can visit per 180 days (0.02: 2%%)")
    t.add_argument("--seed", type=int, default=0, help="random seed of the fit and of the bootstrap intervals")
    t.add_argument("--alias", default="champion",
                   help="'champion': the new version contests the champion through the promotion gate (the "
                        "first version becomes champion at once); any other alias: registered under it, "
                        "without contesting")
    t.add_argument("--no-register", action="store_true", help="log the run without registering a model version")
    t.add_argument("--policy", default=None, metavar="FILE", help="policy parameter file (default: the packaged one)")
    t.add_argument("--feedback-url", default=None, metavar="URL",
                   help="SQLAlchemy URL of the service's store (what RELIEF_RISK_AUDIT_URL names for the "
                        "service): caseworkers' feedback joins the labels (default: none, the data's own "
                        "verifications only)")
    t.add_argument("--gate", default=None, metavar="FILE", help="promotion gate bounds, e.g. experiments/gate.toml "
                                                                "(default: the built-in bounds, the same values)")
    t.set_defaults(func=_train)

    pr = sub.add_parser("promote", help="gate a registered version against the champion; move the alias or "
                                        "refuse (exit 1) with the reasons", formatter_class=Formatter,
                        description="Scores the registered version and the current champion on the later period "
                                    "of a data folder and applies the promotion gate: moves the champion alias to "
                                    "the version, or refuses (exit 1) with the reasons. The decision is logged "
                                    "beside the version's run.",
                        epilog=environment(MLFLOW_TRACKING_URI))
    pr.add_argument("--risk", default="illness_poverty", choices=RISKS, metavar="RISK", help=risks_help())
    pr.add_argument("--version", required=True, help="the registered version to gate, e.g. 3")
    pr.add_argument("--data", default="data/city", metavar="DIR",
                    help="data folder whose later period both models are scored on")
    pr.add_argument("--capacity", type=float, default=0.02,
                    help="share of households caseworkers can visit per 180 days (0.02: 2%%)")
    pr.add_argument("--gate", default=None, metavar="FILE", help="promotion gate bounds, e.g. experiments/gate.toml "
                                                                 "(default: the built-in bounds)")
    pr.add_argument("--policy", default=None, metavar="FILE", help="policy parameter file (default: the packaged one)")
    pr.set_defaults(func=_promote)

    s = sub.add_parser("score", help="score every household of a data folder with one risk's model, as of a date",
                       formatter_class=Formatter,
                       description="Scores every household of a data folder as of a date with one risk's "
                                   "registered model (scores only, no explanations) and writes them to Parquet; "
                                   "prints where, how many households and how many flagged, as JSON.",
                       epilog=environment(MLFLOW_TRACKING_URI))
    s.add_argument("--data", default="data/city", metavar="DIR", help="folder of the raw tables (parquet or CSV)")
    s.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="the date the households are scored as of")
    s.add_argument("--risk", default="illness_poverty", choices=RISKS, metavar="RISK", help=risks_help())
    s.add_argument("--alias", default="champion", help="registered model alias to score with")
    s.add_argument("--out", default="data/scores.parquet", metavar="FILE",
                   help="Parquet file to write, one row per household")
    s.add_argument("--policy", default=None, metavar="FILE", help="policy parameter file (default: the packaged one)")
    s.set_defaults(func=_score)

    add_batch_parser(sub)     # the whole city: scores, explanations of the flagged, Parquet
    add_worklist_parser(sub)  # per town: a ranked list sized to capacity, CSV and Excel

    v = sub.add_parser("serve", help="run the API", formatter_class=Formatter,
                       description="Runs the scoring API (FastAPI on uvicorn) and the auditor's pages with the "
                                   "registered models. It never starts open: RELIEF_RISK_API_KEYS must name the "
                                   "keys (or --demo-keys makes some). Every setting comes from the environment, "
                                   "checked before the workers start.",
                       epilog=environment(*service_settings(), MLFLOW_TRACKING_URI, PORT))
    v.add_argument("--host", default="127.0.0.1", help="address to listen on")
    v.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                   help="port to listen on (default: PORT or 8000, here %(default)s)")
    v.add_argument("--demo-keys", action="store_true",
                   help="when RELIEF_RISK_API_KEYS is not set, generate a key per role, print them and write "
                        "them to .demo_keys (mode 600)")
    v.add_argument("--workers", type=int, default=1,
                   help="worker processes, each with its own socket on the port and the models loaded once")
    v.set_defaults(func=_serve)

    add_audit_parsers(sub)  # verify, keygen, checkpoint, purge

    rp = sub.add_parser("reproduce", help="re-score an audit record with its own model versions and compare; exit 3 "
                                          "if the record was purged", formatter_class=Formatter,
                        description="Re-scores the household of an audit record with the model versions the "
                                    "record names and compares probability, raw score, base value, contributions "
                                    "and reasons: exit 0 if identical, 1 naming what differs, 2 if there is no "
                                    "such record, 3 if it was purged.",
                        epilog=environment(setting("audit_url"), MLFLOW_TRACKING_URI))
    rp.add_argument("request_id", help="the audit record's request id (the request_id of the score's answer; for "
                                       "POST /v1/score also its X-Request-ID)")
    rp.add_argument("--audit-url", default=None, metavar="URL", help=AUDIT_URL_HELP)
    rp.add_argument("--policy", default=None, metavar="FILE", help="policy parameter file (default: the packaged one)")
    rp.set_defaults(func=_reproduce)

    db = sub.add_parser("db", help="the audit store's schema: upgrade to this code's (as every start-up does), or show "
                                   "its revision", formatter_class=Formatter,
                        description="upgrade: runs the store's migrations to this code's head and sets the chain "
                                    "head, what every start of the service does, so it can run once before the "
                                    "workers; current: shows the database's revision.",
                        epilog=environment(setting("audit_url")))
    db.add_argument("action", choices=["upgrade", "current"],
                    help="upgrade: migrate to this code's schema; current: show the database's revision")
    db.add_argument("--audit-url", default=None, metavar="URL", help=AUDIT_URL_HELP)
    db.set_defaults(func=_db)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(a.func(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
