"""One command line with a subcommand per stage: generate, train, score, serve.

    relief-risk generate --households 5000 --out data/city
    relief-risk train --data data/city
    relief-risk train --data data/city --risk all   # every finding, one read of the data
    relief-risk promote --risk illness_poverty --version 3 --data data/city   # gate, then move champion
    relief-risk score --data data/city --as-of 2026-09-30 --out data/scores.parquet
    relief-risk serve --port 8000
    relief-risk verify                      # the audit trail's and the access log's hash chains
    relief-risk verify --checkpoint /var/lib/relief-risk-checkpoints/checkpoints.jsonl --public-key checkpoint.pub
    relief-risk keygen --out /etc/relief-risk/checkpoint        # the checkpoints' signing key pair
    relief-risk checkpoint --key KEY --out FILE                 # sign both chain heads now
    relief-risk purge --dry-run             # records past the retention period: what would be emptied
    relief-risk reproduce REQUEST_ID        # re-score an audit record with its own model versions
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
        keys = {role: secrets.token_urlsafe(24) for role in ("platform", "auditor", "admin")}
        os.environ["RELIEF_RISK_API_KEYS"] = ",".join(f"{r}:{k}" for r, k in keys.items())
        path = Path(".demo_keys")
        path.write_text("".join(f"{r}={k}\n" for r, k in keys.items()), encoding="utf-8")
        path.chmod(0o600)
        print("Generated demo API keys (also in .demo_keys, readable by you only):")
        for r, k in keys.items():
            print(f"  {r:9s} {k}")
        print(f"Try: python3 ../shared/checks/contract_check.py --url http://{a.host}:{a.port} "
              f"--platform-key {keys['platform']} --auditor-key {keys['auditor']}", flush=True)
    Settings()  # fail here, before starting workers, if the settings are wrong
    return serve(a.host, a.port, a.workers)


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
    p = argparse.ArgumentParser(prog="relief-risk", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    from relief_risk.audit_commands import add_audit_parsers
    from relief_risk.batch_commands import add_batch_parser, add_worklist_parser

    add_batch_parser(sub)     # the whole city: scores, explanations of the flagged, Parquet
    add_worklist_parser(sub)  # per town: a ranked list sized to capacity, CSV and Excel

    g = sub.add_parser("generate", help="write a synthetic city's raw tables")
    g.add_argument("--households", type=int, default=5000)
    g.add_argument("--months", type=int, default=36)
    g.add_argument("--end-month", default="2026-10")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default="data/city")
    g.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    g.set_defaults(func=_generate)

    t = sub.add_parser("train", help="fit, evaluate against the rules, log and register in MLflow")
    t.add_argument("--data", default="data/city")
    t.add_argument("--risk", default="illness_poverty",
                   help="a risk, several separated by commas, or 'all' (every finding of the contract); several "
                        "share one read of the data and one set of snapshots, each gets its own run and model; "
                        "exit 1 if one had too few findings to train")
    t.add_argument("--capacity", type=float, default=0.02,
                   help="share of households caseworkers can visit per 180 days")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--alias", default="champion")
    t.add_argument("--no-register", action="store_true")
    t.add_argument("--policy", default=None, help="policy parameter file (default: the packaged one)")
    t.add_argument("--feedback-url", default=None,
                   help="the service's store (RELIEF_RISK_AUDIT_URL): caseworkers' feedback joins the labels")
    t.add_argument("--gate", default=None, help="promotion gate bounds, e.g. experiments/gate.toml "
                                                "(default: the built-in defaults, the same values)")
    t.set_defaults(func=_train)

    pr = sub.add_parser("promote", help="gate a registered version against the champion; move the alias or "
                                        "refuse (exit 1) with the reasons")
    pr.add_argument("--risk", default="illness_poverty")
    pr.add_argument("--version", required=True)
    pr.add_argument("--data", default="data/city", help="data folder whose later period both models are scored on")
    pr.add_argument("--capacity", type=float, default=0.02)
    pr.add_argument("--gate", default=None, help="promotion gate bounds, e.g. experiments/gate.toml")
    pr.add_argument("--policy", default=None)
    pr.set_defaults(func=_promote)

    s = sub.add_parser("score", help="score every household of a data folder as of a date (batch)")
    s.add_argument("--data", default="data/city")
    s.add_argument("--as-of", required=True)
    s.add_argument("--risk", default="illness_poverty")
    s.add_argument("--alias", default="champion")
    s.add_argument("--out", default="data/scores.parquet")
    s.add_argument("--policy", default=None)
    s.set_defaults(func=_score)

    add_audit_parsers(sub)  # verify, keygen, checkpoint, purge

    rp = sub.add_parser("reproduce", help="re-score an audit record with its own model versions and compare; exit 3 "
                                          "if the record was purged")
    rp.add_argument("request_id")
    rp.add_argument("--audit-url", default=None, help="default: RELIEF_RISK_AUDIT_URL or sqlite:///audit.db")
    rp.add_argument("--policy", default=None)
    rp.set_defaults(func=_reproduce)

    db = sub.add_parser("db", help="the audit store's schema: upgrade to this code's (as every start-up does), or show "
                                   "its revision")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--audit-url", default=None, help="default: RELIEF_RISK_AUDIT_URL or sqlite:///audit.db")
    db.set_defaults(func=_db)

    v = sub.add_parser("serve", help="run the API")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    v.add_argument("--demo-keys", action="store_true", help="generate and print keys when none are configured")
    v.add_argument("--workers", type=int, default=1, help="worker processes (each loads the models once)")
    v.set_defaults(func=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(a.func(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
