"""``relief-risk verify``, ``keygen``, ``checkpoint`` and ``purge``: the integrity of the audit trail
and the access log (their hash chains, checked against signed checkpoints kept outside the database,
:mod:`store.checkpoint`) and the retention of audit records' personal payloads. What each proves and
how to run it: docs/audit-integrity.md.

    relief-risk keygen --out /etc/relief-risk/checkpoint
    relief-risk checkpoint --key /etc/relief-risk/checkpoint/checkpoint.key --out checkpoints.jsonl
    relief-risk verify --checkpoint checkpoints.jsonl --public-key checkpoint.pub
    relief-risk purge --dry-run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from relief_risk.clihelp import Formatter, environment, setting
from store.access import AccessLog
from store.audit import ACCESS_CHAIN, AuditStore
from store.checkpoint import (
    CheckpointKeyError,
    Kind,
    Problem,
    append,
    broken,
    fingerprint,
    load_private_key,
    load_public_key,
    read,
    sign,
    verify_against,
    write_keys,
)

AUDIT_URL_HELP = "SQLAlchemy URL of the audit store (default: RELIEF_RISK_AUDIT_URL, else sqlite:///audit.db)"


def audit_store(a: argparse.Namespace) -> AuditStore:
    """The store named by ``--audit-url``, else ``RELIEF_RISK_AUDIT_URL``, else ``sqlite:///audit.db``."""
    return AuditStore(a.audit_url or os.environ.get("RELIEF_RISK_AUDIT_URL", "sqlite:///audit.db"))


RETENTION_DAYS = 1095  # three years; why: docs/audit-integrity.md, "Retention and purge"
RETENTION_ENV = ("RELIEF_RISK_RETENTION_DAYS", "the retention period in days when --retention-days is not given "
                 f"(default: {RETENTION_DAYS}, three years)")


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _keygen(a: argparse.Namespace) -> int:
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
    store = audit_store(a)
    try:
        cp = sign(store, key)
        append(out, cp)
    finally:
        store.dispose()
    print(f"signed at {cp.created_at}: audit trail record {cp.audit.seq} {cp.audit.head}, access log event "
          f"{cp.access.seq} {cp.access.head}; appended to {out}")
    return 0


def _verify(a: argparse.Namespace) -> int:
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
    store = audit_store(a)
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
    store = audit_store(a)
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
          "row(s)" + (f" and {done.casework_rows} casework row(s) of the household (needs assessments, plan measures "
                      "and their events)" if a.household else ""))
    return 0




def add_audit_parsers(sub: Any) -> None:
    """Adds ``verify``, ``keygen``, ``checkpoint`` and ``purge`` to the command line's subparsers."""
    vf = sub.add_parser("verify", help="check the audit trail's and the access log's hash chains and, with "
                                       "--checkpoint and --public-key, that they still extend every signed checkpoint; "
                                       "exit 1 naming each problem", formatter_class=Formatter,
                        description="Recomputes the audit trail's and the access log's hash chains and, with "
                                    "--checkpoint and --public-key, checks every signed checkpoint's signature and "
                                    "that both chains still extend it: exit 0 with the heads, 1 naming each "
                                    "problem, 2 if the files cannot be used. What each proves: "
                                    "docs/audit-integrity.md.",
                        epilog=environment(setting("audit_url")))
    vf.add_argument("--audit-url", default=None, metavar="URL", help=AUDIT_URL_HELP)
    vf.add_argument("--checkpoint", default=None, metavar="FILE",
                    help="the signed checkpoint file (one JSON line each) to check the chains against; no default and "
                         "no environment variable: the auditor names the copy they trust; needs --public-key")
    vf.add_argument("--public-key", default=None, metavar="FILE",
                    help="the public key (checkpoint.pub from keygen) every checkpoint must be signed with; no "
                         "default and no environment variable: the auditor's own copy, not the server's")
    vf.set_defaults(func=_verify)

    kg = sub.add_parser("keygen", help="make the Ed25519 key pair that signs checkpoints: DIR/checkpoint.key "
                                       "(private, mode 600; never overwritten) and DIR/checkpoint.pub",
                        formatter_class=Formatter,
                        description="Makes the Ed25519 key pair that signs checkpoints: DIR/checkpoint.key (the "
                                    "private key, mode 600, never overwritten: the service's or the checkpoint "
                                    "command's) and DIR/checkpoint.pub (for the auditors); prints its fingerprint.",
                        epilog=environment())
    kg.add_argument("--out", required=True, metavar="DIR",
                    help="the folder for the two files (made, mode 700, if missing); no default, no environment "
                         "variable; keep it off the database's host and out of its backups")
    kg.set_defaults(func=_keygen)

    cp = sub.add_parser("checkpoint", help="sign the audit trail's and the access log's heads now and append the "
                                           "checkpoint to the file", formatter_class=Formatter,
                        description="Signs the audit trail's and the access log's heads now with the private key "
                                    "and appends the checkpoint (one JSON line) to the checkpoint file; the "
                                    "service does the same by itself when RELIEF_RISK_CHECKPOINT_KEY and _FILE "
                                    "are set.",
                        epilog=environment(setting("audit_url"), setting("checkpoint_key"),
                                           setting("checkpoint_file")))
    cp.add_argument("--key", default=None, metavar="FILE",
                    help="the private key (checkpoint.key, mode 600); default: RELIEF_RISK_CHECKPOINT_KEY")
    cp.add_argument("--out", default=None, metavar="FILE",
                    help="the checkpoint file to append to (made if missing; its folder must exist); default: "
                         "RELIEF_RISK_CHECKPOINT_FILE")
    cp.add_argument("--audit-url", default=None, metavar="URL", help=AUDIT_URL_HELP)
    cp.set_defaults(func=_checkpoint)

    pg = sub.add_parser("purge", help="empty the personal payload (request, scores, response) of audit records past "
                                      "the retention period; the records keep their place and hash in the chain",
                        formatter_class=Formatter,
                        description="Empties the personal payload (request, scores, response) of the audit records "
                                    "created before the retention period, and deletes their nightly batch score "
                                    "rows; each record keeps its place and hash in the chain, so verify still "
                                    "passes and reproduce says the record was purged. --dry-run counts only.",
                        epilog=environment(setting("audit_url"), RETENTION_ENV))
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
    pg.add_argument("--audit-url", default=None, metavar="URL", help=AUDIT_URL_HELP)
    pg.set_defaults(func=_purge)
