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
    from store.audit import AuditStore

    return AuditStore(a.audit_url or os.environ.get("RELIEF_RISK_AUDIT_URL", "sqlite:///audit.db"))


RETENTION_DAYS = 1095  # three years; why: docs/audit-integrity.md, "Retention and purge"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _keygen(a: argparse.Namespace) -> int:
    from store.checkpoint import CheckpointKeyError, fingerprint, load_private_key, write_keys

    try:
        private, public = write_keys(a.out)
    except FileExistsError as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    try:
        key = load_private_key(private)
    except CheckpointKeyError as exc:  # e.g. a file system that ignores modes
        print(f"keygen: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {private} (private, mode 600: the service's signing key; never in the database or its backups) "
          f"and {public} (public: give it to the auditors)\nkey fingerprint {fingerprint(key.public_key())}")
    return 0


def _checkpoint(a: argparse.Namespace) -> int:
    from store.checkpoint import CheckpointKeyError, append, load_private_key, sign

    key_path, out = a.key or _env("RELIEF_RISK_CHECKPOINT_KEY"), a.out or _env("RELIEF_RISK_CHECKPOINT_FILE")
    if not key_path or not out:
        print("checkpoint: give --key and --out (or set RELIEF_RISK_CHECKPOINT_KEY and RELIEF_RISK_CHECKPOINT_FILE)",
              file=sys.stderr)
        return 2
    try:
        key = load_private_key(key_path)
    except CheckpointKeyError as exc:
        print(f"checkpoint: {exc}", file=sys.stderr)
        return 2
    store = _audit_store(a)
    try:
        cp = sign(store, key)
        append(out, cp)
    finally:
        store.dispose()
    print(f"signed at {cp.created_at}: audit trail record {cp.audit.seq} {cp.audit.head}, access log event "
          f"{cp.access.seq} {cp.access.head}; appended to {out}")
    return 0


def _verify(a: argparse.Namespace) -> int:
    from store.access import AccessLog
    from store.audit import ACCESS_CHAIN
    from store.checkpoint import CheckpointKeyError, Kind, Problem, broken, load_public_key, read, verify_against

    if (a.checkpoint is None) != (a.public_key is None):
        print("verify: --checkpoint and --public-key go together (the file, and the key its lines must be signed "
              "with)", file=sys.stderr)
        return 2
    public_key = None
    if a.public_key is not None:
        try:
            public_key = load_public_key(a.public_key)
        except CheckpointKeyError as exc:
            print(f"verify: {exc}", file=sys.stderr)
            return 2
    store = _audit_store(a)
    try:
        n, problem = store.verify()
        m, access_problem = AccessLog(store).verify()
        problems: list[Problem] = [broken(c, p) for c, p in (("audit", problem), ("access", access_problem)) if p]
        checkpoints = []
        if public_key is not None:
            try:
                checkpoints, unread = read(a.checkpoint)
            except OSError as exc:
                print(f"verify: cannot read the checkpoint file {a.checkpoint}: {exc.strerror}", file=sys.stderr)
                return 2
            problems += unread
            if not checkpoints and not unread:
                problems.append(Problem(Kind.NO_CHECKPOINTS, f"{a.checkpoint} holds no checkpoint: nothing to "
                                                             "verify against"))
            problems += verify_against(store, checkpoints, public_key, internal=False)
        seq, head = store.head()
        access_seq, access_head = store.head(ACCESS_CHAIN)
    finally:
        store.dispose()
    if problem is not None:  # the first line as it always was: the broken record, its request id
        print(f"BROKEN at record {problem.seq} (request_id {problem.request_id or '-'}): {problem.reason}; "
              f"{n} records read", file=sys.stderr)
    if access_problem is not None:
        print(f"BROKEN at access event {access_problem.seq}: {access_problem.reason}; {m} events read",
              file=sys.stderr)
    for p in problems:
        if p.kind is not Kind.BROKEN:
            print(f"CHECKPOINT {p.kind.upper()}: {p.message}", file=sys.stderr)
    if problems:
        return 1
    print(f"OK: {n} records, chain intact; head {seq} {head}; access log {m} events, chain intact; head "
          f"{access_seq} {access_head}")
    if public_key is None:
        print("note: without --checkpoint and --public-key this checks each chain against its own head only, which "
              "lives in the same database: a cut-off tail with a reset head, or a record rewritten with every later "
              "hash recomputed, cannot be told without a signed checkpoint")
    else:
        latest = max(checkpoints, key=lambda c: (c.audit.seq, c.access.seq))
        print(f"checkpoints: {len(checkpoints)} in {a.checkpoint}, every signature holds, both chains extend each; "
              f"the latest signed record {latest.audit.seq} and access event {latest.access.seq} at "
              f"{latest.created_at}")
    return 0


def _purge(a: argparse.Namespace) -> int:
    import datetime as dt

    days = a.retention_days if a.retention_days is not None else _env("RELIEF_RISK_RETENTION_DAYS") or RETENTION_DAYS
    try:
        days = int(days)
        if days < 1:
            raise ValueError
    except ValueError:
        print(f"purge: the retention period must be a whole number of days ≥ 1, got {days!r}", file=sys.stderr)
        return 2
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = today - dt.timedelta(days=days)
    before = cutoff
    if a.before is not None:
        try:
            before = dt.datetime.fromisoformat(a.before.replace("Z", "+00:00"))
        except ValueError:
            print(f"purge: --before {a.before!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", file=sys.stderr)
            return 2
        before = before.replace(tzinfo=dt.UTC) if before.tzinfo is None else before.astimezone(dt.UTC)
    if before > cutoff and not (a.force and a.household):
        print(f"purge: {before:%Y-%m-%d %H:%M} UTC is within the retention period of {days} days (records from "
              f"{cutoff:%Y-%m-%d} on must be kept). Purging them is only for one household's erasure request: give "
              "--household ID and --force.", file=sys.stderr)
        return 2
    store = _audit_store(a)
    try:
        done = store.purge(before, a.household, dry_run=a.dry_run)
    finally:
        store.dispose()
    whose = f" of household {a.household}" if a.household else ""
    verb = "would empty" if a.dry_run else "emptied"
    print(f"{'dry run: ' if a.dry_run else ''}{verb} the payload (request, scores, response) of {done.records} "
          f"audit record(s){whose} created before {before.isoformat().replace('+00:00', 'Z')} (retention {days} "
          f"days); {done.legacy_kept} record(s) written before payloads were hashed apart kept whole (their hash "
          f"covers the payload); {'would delete' if a.dry_run else 'deleted'} {done.batch_rows} nightly batch score "
          "row(s)")
    return 0


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

    vf = sub.add_parser("verify", help="check the audit trail's and the access log's hash chains and, with "
                                       "--checkpoint and --public-key, that they still extend every signed checkpoint; "
                                       "exit 1 naming each problem")
    vf.add_argument("--audit-url", default=None, help="default: RELIEF_RISK_AUDIT_URL or sqlite:///audit.db")
    vf.add_argument("--checkpoint", default=None, metavar="FILE",
                    help="the signed checkpoint file (one JSON line each) to check the chains against; no default and "
                         "no environment variable: the auditor names the copy they trust; needs --public-key")
    vf.add_argument("--public-key", default=None, metavar="FILE",
                    help="the public key (checkpoint.pub from keygen) every checkpoint must be signed with; no "
                         "default and no environment variable: the auditor's own copy, not the server's")
    vf.set_defaults(func=_verify)

    kg = sub.add_parser("keygen", help="make the Ed25519 key pair that signs checkpoints: DIR/checkpoint.key "
                                       "(private, mode 600; never overwritten) and DIR/checkpoint.pub")
    kg.add_argument("--out", required=True, metavar="DIR",
                    help="the folder for the two files (made, mode 700, if missing); no default, no environment "
                         "variable; keep it off the database's host and out of its backups")
    kg.set_defaults(func=_keygen)

    cp = sub.add_parser("checkpoint", help="sign the audit trail's and the access log's heads now and append the "
                                           "checkpoint to the file")
    cp.add_argument("--key", default=None, metavar="FILE",
                    help="the private key (checkpoint.key, mode 600); default: RELIEF_RISK_CHECKPOINT_KEY")
    cp.add_argument("--out", default=None, metavar="FILE",
                    help="the checkpoint file to append to (made if missing; its folder must exist); default: "
                         "RELIEF_RISK_CHECKPOINT_FILE")
    cp.add_argument("--audit-url", default=None, help="default: RELIEF_RISK_AUDIT_URL or sqlite:///audit.db")
    cp.set_defaults(func=_checkpoint)

    pg = sub.add_parser("purge", help="empty the personal payload (request, scores, response) of audit records past "
                                      "the retention period; the records keep their place and hash in the chain")
    pg.add_argument("--before", default=None, metavar="DATE",
                    help="purge records created before DATE (YYYY-MM-DD, 00:00 UTC, or an ISO 8601 time); default: "
                         "today (UTC) minus the retention period; a DATE later than that needs --household and "
                         "--force")
    pg.add_argument("--household", default=None, metavar="ID",
                    help="only this household's records (an erasure request); default: every household")
    pg.add_argument("--retention-days", type=int, default=None, metavar="N",
                    help=f"the retention period in days; default: RELIEF_RISK_RETENTION_DAYS or {RETENTION_DAYS} "
                         "(three years)")
    pg.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing (default: off)")
    pg.add_argument("--force", action="store_true",
                    help="allow a DATE within the retention period, for one household's erasure request (with "
                         "--household; default: off)")
    pg.add_argument("--audit-url", default=None, help="default: RELIEF_RISK_AUDIT_URL or sqlite:///audit.db")
    pg.set_defaults(func=_purge)

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
