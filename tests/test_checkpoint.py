"""Signed checkpoints of the chain heads (store/checkpoint.py), on SQLite and on PostgreSQL.

Each attack is carried out as someone with write access to the database would: SQL that changes
rows and then recomputes every later hash and the chain head, so the chain's own check still
passes. Each must then be found and named, through the library and through the command line.

Over 400 lines because the attacker's SQL (truncate, rewrite, swap, each followed by recomputing
every later hash and the head) is shared by every attack test, and each attack runs on both chains.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from relief_risk.cli import main
from store import checkpoint as cpt
from store.access import AccessLog, Caller, event_hash
from store.audit import ACCESS_CHAIN, AUDIT_CHAIN, GENESIS, AuditRecord, AuditStore, payload_hash, record_hash
from store.checkpoint import Kind
from store.schema import access_log, audit_records
from tests.test_audit_store import created_store

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """(store, url): a fresh audit store and the URL the command line is given."""
    with created_store(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def keys(tmp_path):
    """(private key file, public key file, private key, public key)."""
    private, public = cpt.write_keys(tmp_path / "keys")
    return private, public, cpt.load_private_key(private), cpt.load_public_key(public)


def record(i: int, created_at: dt.datetime | None = None, household_id: str = "H1") -> AuditRecord:
    rid = uuid.uuid4().hex
    return AuditRecord(request_id=rid, created_at=created_at or T0 + dt.timedelta(seconds=i), kind="score",
                       household_id=household_id, as_of="2026-02-28",
                       models=[{"name": "illness_poverty", "version": "3"}],
                       request={"household": {"household_id": household_id, "town": "乐余"}},
                       scores=[{"risk": "illness_poverty", "raw_score": -1.25 + i / 100, "flagged": i % 7 == 0}],
                       response={"request_id": rid, "n": i})


def fill(store: AuditStore, n: int, **kw) -> None:
    """n more audit records and n more access events."""
    start = store.head()[0]
    store.write([record(start + i + 1, **kw) for i in range(n)])
    log = AccessLog(store)
    for i in range(n):
        log.record("audit_record", Caller("auditor", "k-auditor"), households=[f"H{i}"], requests=[f"r{i}"])


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def checkpoint_now(capsys, url: str, keys, out: Path) -> None:
    code, stdout, err = cli(capsys, "checkpoint", "--audit-url", url, "--key", str(keys[0]), "--out", str(out))
    assert code == 0, err
    assert "appended to" in stdout


def verify(capsys, url: str, keys, cps: Path) -> tuple[int, str, str]:
    return cli(capsys, "verify", "--audit-url", url, "--checkpoint", str(cps), "--public-key", str(keys[1]))


# ---- the attacker's SQL --------------------------------------------------------------------------------
CHAINS = {"audit": (audit_records, AUDIT_CHAIN, record_hash), "access": (access_log, ACCESS_CHAIN, event_hash)}


def rehash_from(store: AuditStore, chain: str, seq: int) -> None:
    """Recomputes the hash of every row from ``seq`` on and the chain head, as one who can write the
    database would after changing a row: the chain's own check passes again."""
    table, head_id, hash_of = CHAINS[chain]
    name = table.name
    with store.engine.begin() as conn:
        prev = conn.execute(text(f"SELECT record_hash FROM {name} WHERE seq = :s"), {"s": seq - 1}).scalar() or GENESIS
        rows = [dict(r) for r in conn.execute(select(table).where(table.c.seq >= seq).order_by(table.c.seq)).mappings()]
        for row in rows:
            h = hash_of(prev, row)
            conn.execute(text(f"UPDATE {name} SET prev_hash = :p, record_hash = :h WHERE seq = :s"),
                         {"p": prev, "h": h, "s": row["seq"]})
            prev = h
        conn.execute(text("UPDATE audit_chain SET seq = :s, head_hash = :h WHERE id = :c"),
                     {"s": rows[-1]["seq"] if rows else seq - 1, "h": prev, "c": head_id})


def truncate(store: AuditStore, chain: str, keep: int) -> None:
    """Deletes every row after ``keep`` and resets the head to row ``keep``."""
    table, head_id, _ = CHAINS[chain]
    with store.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {table.name} WHERE seq > :k"), {"k": keep})
        conn.execute(text(f"UPDATE audit_chain SET seq = :k, head_hash = (SELECT record_hash FROM {table.name} "
                          "WHERE seq = :k) WHERE id = :c"), {"k": keep, "c": head_id})


def rewrite(store: AuditStore, chain: str, seq: int) -> None:
    """Edits row ``seq``'s content (a record's payload and its payload hash; an event's targets), then
    recomputes every later hash and the head."""
    with store.engine.begin() as conn:
        if chain == "audit":
            req, sc, resp = '{"household":{"household_id":"H1","town":"乐余"}}', '[{"flagged":false}]', '{}'
            conn.execute(text("UPDATE audit_records SET request = :q, scores = :s, response = :r, payload_hash = :p, "
                              "flagged = false WHERE seq = :n"),
                         {"q": req, "s": sc, "r": resp, "p": payload_hash(req, sc, resp), "n": seq})
        else:
            conn.execute(text("UPDATE access_log SET targets = :t WHERE seq = :n"),
                         {"t": '{"households":[],"requests":[]}', "n": seq})
    rehash_from(store, chain, seq)


def swap(store: AuditStore, chain: str, seq: int) -> None:
    """Swaps rows ``seq`` and ``seq + 1`` (renumbered), then recomputes every later hash and the head."""
    name = CHAINS[chain][0].name
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {name} SET seq = -1 WHERE seq = :a"), {"a": seq})
        conn.execute(text(f"UPDATE {name} SET seq = :a WHERE seq = :b"), {"a": seq, "b": seq + 1})
        conn.execute(text(f"UPDATE {name} SET seq = :b WHERE seq = -1"), {"b": seq + 1})
    rehash_from(store, chain, seq)


def internal_ok(store: AuditStore) -> None:
    """The chains' own checks pass: the attack is invisible without a checkpoint."""
    assert store.verify()[1] is None
    assert AccessLog(store).verify()[1] is None


# ---- keys ----------------------------------------------------------------------------------------------
def test_keygen_writes_a_private_key_for_its_owner_only_and_never_overwrites(capsys, tmp_path):
    out = tmp_path / "keys"
    code, stdout, _ = cli(capsys, "keygen", "--out", str(out))
    assert code == 0 and "fingerprint" in stdout
    private, public = out / "checkpoint.key", out / "checkpoint.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    code, _, err = cli(capsys, "keygen", "--out", str(out))
    assert code == 1 and "never overwritten" in err and private.read_bytes() == before
    key, pub = cpt.load_private_key(private), cpt.load_public_key(public)
    assert cpt.fingerprint(key.public_key()) == cpt.fingerprint(pub) and cpt.fingerprint(pub) in stdout


def test_a_private_key_open_to_others_is_refused_with_what_to_do(keys, tmp_path):
    private = keys[0]
    private.chmod(0o640)
    with pytest.raises(cpt.CheckpointKeyError, match=r"mode 640.*chmod 600"):
        cpt.load_private_key(private)
    with pytest.raises(cpt.CheckpointKeyError, match="does not exist"):
        cpt.load_private_key(tmp_path / "none.key")
    private.chmod(0o600)
    with pytest.raises(cpt.CheckpointKeyError, match="not an Ed25519|not an unencrypted PEM"):
        other = tmp_path / "other.key"
        other.write_text("not a key")
        other.chmod(0o600)
        cpt.load_private_key(other)


def test_the_checkpoint_command_refuses_an_open_key(capsys, keys, tmp_path):
    keys[0].chmod(0o644)
    code, _, err = cli(capsys, "checkpoint", "--audit-url", f"sqlite:///{tmp_path / 'a.db'}", "--key", str(keys[0]),
                       "--out", str(tmp_path / "cp.jsonl"))
    assert code == 2 and "chmod 600" in err and not (tmp_path / "cp.jsonl").exists()


# ---- the honest cases ----------------------------------------------------------------------------------
def test_a_growing_trail_verifies_against_older_checkpoints(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    checkpoint_now(capsys, url, keys, cps)          # both chains empty: seq 0, GENESIS
    for n in (5, 12, 1):
        fill(store, n)
        checkpoint_now(capsys, url, keys, cps)
    fill(store, 4)                                   # more since the last checkpoint
    read, problems = cpt.read(cps)
    assert problems == [] and [c.audit.seq for c in read] == [0, 5, 17, 18]
    assert [c.line for c in read] == [1, 2, 3, 4] and read[0].audit.head == GENESIS
    assert cpt.verify_against(store, read, keys[3]) == []
    assert cpt.verify_file(store, cps, keys[3]) == []
    code, out, err = verify(capsys, url, keys, cps)
    assert code == 0, err
    assert out.startswith("OK: 22 records") and "access log 22 events" in out
    assert "checkpoints: 4" in out and "every signature holds" in out


def test_a_checkpoint_line_is_canonical_json_with_every_signed_field(db, keys):
    store, _ = db
    fill(store, 3)
    cp = cpt.sign(store, keys[2], now=dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC))
    line = cp.to_line()
    obj = json.loads(line)
    assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert obj["format"] == cpt.FORMAT and obj["created_at"] == "2026-05-01T12:00:00.000000Z"
    assert obj["audit"] == {"seq": 3, "head": store.head()[1]}
    assert obj["access"] == {"seq": 3, "head": store.head(ACCESS_CHAIN)[1]}
    assert obj["key"] == cpt.fingerprint(keys[3])
    assert cpt.parse(line) == cp and cpt.signature_holds(cp, keys[3])


def test_without_a_checkpoint_verify_says_what_it_cannot_tell(db, capsys):
    store, url = db
    fill(store, 3)
    code, out, _ = cli(capsys, "verify", "--audit-url", url)
    assert code == 0 and out.startswith("OK: 3 records")
    assert "cut-off tail with a reset head" in out and "cannot be told without a signed checkpoint" in out
    code, _, err = cli(capsys, "verify", "--audit-url", url, "--checkpoint", "x.jsonl")
    assert code == 2 and "go together" in err


def test_an_empty_or_missing_checkpoint_file_is_not_a_pass(db, keys, capsys, tmp_path):
    store, url = db
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = verify(capsys, url, keys, empty)
    assert code == 1 and "NO CHECKPOINTS" in err
    code, _, err = verify(capsys, url, keys, tmp_path / "missing.jsonl")
    assert code == 2 and "cannot read the checkpoint file" in err


# ---- the attacks, on both chains ---------------------------------------------------------------------------
@pytest.mark.parametrize("chain", ["audit", "access"])
def test_a_truncated_tail_with_a_reset_head_is_found(db, keys, capsys, tmp_path, chain):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 5)
    checkpoint_now(capsys, url, keys, cps)
    fill(store, 5)
    checkpoint_now(capsys, url, keys, cps)
    truncate(store, chain, 7)
    internal_ok(store)
    assert cli(capsys, "verify", "--audit-url", url)[0] == 0   # what the chain alone says

    problems = cpt.verify_file(store, cps, keys[3])
    assert [(p.kind, p.chain, p.since, p.upto, p.line) for p in problems] == [(Kind.TRUNCATED, chain, 7, 10, 2)]
    noun = "record" if chain == "audit" else "access event"
    assert f"ends at {noun} 7" in problems[0].message and f"{noun}s 8–10 at least were cut off" in problems[0].message
    assert "still extends the checkpoint line 1" in problems[0].message
    code, _, err = verify(capsys, url, keys, cps)
    assert code == 1 and "CHECKPOINT TRUNCATED" in err and f"{noun}s 8–10" in err


def test_a_cut_tail_whose_head_was_left_is_found_by_both_checks(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 6)
    checkpoint_now(capsys, url, keys, cps)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq > 4"))
    kinds = [p.kind for p in cpt.verify_file(store, cps, keys[3])]
    assert kinds == [Kind.BROKEN, Kind.TRUNCATED]
    code, _, err = verify(capsys, url, keys, cps)
    assert code == 1 and "BROKEN at record 5" in err and "CHECKPOINT TRUNCATED" in err


@pytest.mark.parametrize("chain", ["audit", "access"])
def test_a_rewritten_record_with_recomputed_hashes_is_found_and_narrowed_down(db, keys, capsys, tmp_path, chain):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    for _ in range(3):
        fill(store, 10)
        checkpoint_now(capsys, url, keys, cps)
    rewrite(store, chain, 15)
    internal_ok(store)

    problems = cpt.verify_file(store, cps, keys[3])
    assert [(p.kind, p.chain, p.since, p.upto, p.seq, p.line) for p in problems] == \
        [(Kind.REWRITTEN, chain, 10, 20, 20, 2)]
    noun = "record" if chain == "audit" else "access event"
    assert f"held up to {noun} 10 (checkpoint line 1" in problems[0].message
    assert f"{noun}s 11–20" in problems[0].message and "1 later checkpoint(s) fail with it" in problems[0].message
    code, _, err = verify(capsys, url, keys, cps)
    assert code == 1 and "CHECKPOINT REWRITTEN" in err and f"{noun}s 11–20" in err


def test_a_rewrite_before_the_first_checkpoint_is_narrowed_to_the_start(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 8)
    checkpoint_now(capsys, url, keys, cps)
    rewrite(store, "audit", 2)
    (p,) = cpt.verify_file(store, cps, keys[3])
    assert (p.kind, p.since, p.upto) == (Kind.REWRITTEN, 0, 8) and "no earlier checkpoint holds" in p.message


@pytest.mark.parametrize("chain", ["audit", "access"])
def test_a_swapped_pair_is_found_and_named(db, keys, capsys, tmp_path, chain):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    for _ in range(2):
        fill(store, 10)
        checkpoint_now(capsys, url, keys, cps)
    swap(store, chain, 14)
    internal_ok(store)

    problems = cpt.verify_file(store, cps, keys[3])
    assert [(p.kind, p.chain, p.since, p.upto) for p in problems] == [(Kind.REORDERED, chain, 13, 15)]
    noun = "record" if chain == "audit" else "access event"
    assert f"{noun}s 14 and 15 were swapped" in problems[0].message
    code, _, err = verify(capsys, url, keys, cps)
    assert code == 1 and "CHECKPOINT REORDERED" in err and f"{noun}s 14 and 15 were swapped" in err

    # beyond the search's bound it is named as either, with the range
    (p,) = cpt.verify_file(store, cps, keys[3], search_limit=5)
    assert (p.kind, p.since, p.upto) == (Kind.REWRITTEN_OR_REORDERED, 10, 20) and "not searched" in p.message


def test_a_swap_that_leaves_no_trace_in_the_times_is_found_by_the_full_search(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    store.write([record(i, created_at=T0) for i in range(1, 13)])   # one time for all: no inversion to try first
    checkpoint_now(capsys, url, keys, cps)
    swap(store, "audit", 12 - 1)                                     # the last pair: 11 and 12
    (p,) = cpt.verify_file(store, cps, keys[3])
    assert (p.kind, p.since, p.upto) == (Kind.REORDERED, 10, 12)
    swap(store, "audit", 11)                                         # back in order: all holds again
    assert cpt.verify_file(store, cps, keys[3]) == []


def test_a_swap_across_the_signed_record_is_found(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 6)
    checkpoint_now(capsys, url, keys, cps)
    fill(store, 2)
    swap(store, "audit", 6)                                          # the signed record 6 and the next, 7
    (p,) = cpt.verify_file(store, cps, keys[3])
    assert (p.kind, p.since, p.upto) == (Kind.REORDERED, 5, 7)


# ---- the checkpoint file itself ----------------------------------------------------------------------------
def test_an_altered_a_forged_and_a_malformed_line_are_named(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 4)
    checkpoint_now(capsys, url, keys, cps)
    good = cps.read_text().strip()
    altered = json.loads(good)
    altered["audit"]["seq"] = 3                      # someone moves the signed seq back
    altered["audit"]["head"] = next(store.rows(after=2, upto=3))["record_hash"]
    forger, _ = cpt.write_keys(tmp_path / "forger")  # someone signs with a key of their own
    forged = cpt.sign(store, cpt.load_private_key(forger)).to_line()
    with open(cps, "a") as f:
        f.write(json.dumps(altered) + "\n" + forged + "\n" + "{not json\n" + '{"format": "x"}\n')

    checkpoints, unread = cpt.read(cps)
    assert [c.line for c in checkpoints] == [1, 2, 3]
    assert [(p.kind, p.line) for p in unread] == [(Kind.MALFORMED, 4), (Kind.MALFORMED, 5)]
    assert "not JSON" in unread[0].message and "missing" in unread[1].message
    problems = cpt.verify_file(store, cps, keys[3])
    assert [(p.kind, p.line) for p in problems] == [(Kind.MALFORMED, 4), (Kind.MALFORMED, 5),
                                                    (Kind.BAD_SIGNATURE, 2), (Kind.OTHER_KEY, 3)]
    code, _, err = verify(capsys, url, keys, cps)
    assert code == 1
    for said in ("CHECKPOINT MALFORMED: checkpoint line 4", "CHECKPOINT BAD SIGNATURE: checkpoint line 2",
                 "CHECKPOINT OTHER KEY: checkpoint line 3"):
        assert said in err


def test_verifying_with_another_public_key_fails_every_line(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    fill(store, 2)
    checkpoint_now(capsys, url, keys, cps)
    checkpoint_now(capsys, url, keys, cps)
    _, other = cpt.write_keys(tmp_path / "other")
    problems = cpt.verify_file(store, cps, cpt.load_public_key(other))
    assert [(p.kind, p.line) for p in problems] == [(Kind.OTHER_KEY, 1), (Kind.OTHER_KEY, 2)]
    code, _, err = cli(capsys, "verify", "--audit-url", url, "--checkpoint", str(cps), "--public-key", str(other))
    assert code == 1 and err.count("CHECKPOINT OTHER KEY") == 2


def test_a_torn_last_line_stays_one_malformed_line(keys, tmp_path):
    cps = tmp_path / "checkpoints.jsonl"
    cp = cpt.sign_heads(cpt.Head(0, GENESIS), cpt.Head(0, GENESIS), keys[2])
    cpt.append(cps, cp)
    with open(cps, "a") as f:
        f.write(cp.to_line()[:40])                    # a crash in the middle of a write
    cpt.append(cps, cp)
    checkpoints, unread = cpt.read(cps)
    assert [c.line for c in checkpoints] == [1, 3] and [p.line for p in unread] == [2]


def test_concurrent_appends_keep_every_line_whole(keys, tmp_path):
    cps = tmp_path / "checkpoints.jsonl"
    cp = cpt.sign_heads(cpt.Head(7, "a" * 64), cpt.Head(3, "b" * 64), keys[2])

    def writer():
        for _ in range(50):
            cpt.append(cps, cp)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checkpoints, unread = cpt.read(cps)
    assert len(checkpoints) == 200 and unread == [] and stat.S_IMODE(cps.stat().st_mode) & 0o022 == 0


# ---- retention: purge, and what a purged record still says ------------------------------------------------
def old_and_new(store: AuditStore) -> tuple[list[AuditRecord], list[AuditRecord]]:
    now = dt.datetime.now(dt.UTC)
    old = store.write([record(i, created_at=now - dt.timedelta(days=4 * 365, hours=i), household_id=f"H{i % 2}")
                       for i in range(1, 5)])
    new = store.write([record(i, created_at=now - dt.timedelta(days=30, hours=i), household_id=f"H{i % 2}")
                       for i in range(5, 8)])
    return old, new


def make_legacy(store: AuditStore, seq: int) -> None:
    """Row ``seq`` as written before 0002 (payload_hash NULL: its hash covers the payload itself)."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET payload_hash = NULL WHERE seq = :s"), {"s": seq})
    rehash_from(store, "audit", seq)


def test_purge_keeps_the_chain_and_every_earlier_checkpoint(db, keys, capsys, tmp_path):
    store, url = db
    cps = tmp_path / "checkpoints.jsonl"
    old, new = old_and_new(store)
    make_legacy(store, 1)
    kept = store.get(old[1].request_id)
    checkpoint_now(capsys, url, keys, cps)
    fill(store, 2)
    checkpoint_now(capsys, url, keys, cps)

    code, out, _ = cli(capsys, "purge", "--audit-url", url, "--dry-run")
    assert code == 0 and out.startswith("dry run: would empty") and " of 3 audit record(s)" in out
    assert "1 record(s) written before payloads were hashed apart kept whole" in out
    assert all(r.purged_at is None for r in store.query(limit=100))

    code, out, _ = cli(capsys, "purge", "--audit-url", url)
    assert code == 0 and "emptied the payload (request, scores, response) of 3 audit record(s)" in out
    assert "retention 1095 days" in out and "1 record(s) written before" in out
    gone = store.get(old[1].request_id)
    assert gone.purged_at is not None and (gone.request, gone.scores, gone.response) == ({}, [], {})
    assert (gone.seq, gone.created_at, gone.household_id, gone.models, gone.flagged, gone.record_hash) == \
        (kept.seq, kept.created_at, kept.household_id, kept.models, kept.flagged, kept.record_hash)
    assert store.get(old[0].request_id).purged_at is None             # the legacy record, kept whole
    assert all(store.get(r.request_id).purged_at is None for r in new)  # within retention

    code, out, err = verify(capsys, url, keys, cps)
    assert code == 0, err
    assert cpt.verify_file(store, cps, keys[3]) == []


def test_purging_within_retention_needs_one_household_and_force(db, capsys):
    store, url = db
    old, new = old_and_new(store)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    code, _, err = cli(capsys, "purge", "--audit-url", url, "--before", tomorrow)
    assert code == 2 and "within the retention period" in err and "--household ID and --force" in err
    code, _, err = cli(capsys, "purge", "--audit-url", url, "--before", tomorrow, "--force")
    assert code == 2
    code, out, _ = cli(capsys, "purge", "--audit-url", url, "--before", tomorrow, "--household", "H0", "--force")
    assert code == 0 and "of household H0" in out
    assert {r.household_id for r in store.query(limit=100) if r.purged_at is not None} == {"H0"}
    assert store.verify()[1] is None
    code, out, _ = cli(capsys, "purge", "--audit-url", url, "--retention-days", "10")   # a shorter period
    assert code == 0 and "of 4 audit record(s)" in out    # H1's, all older than 10 days (H0's were purged already)
    assert cli(capsys, "purge", "--audit-url", url, "--before", "soon")[0] == 2


def test_the_retention_period_is_read_from_the_environment(db, capsys, monkeypatch):
    store, url = db
    old_and_new(store)
    monkeypatch.setenv("RELIEF_RISK_RETENTION_DAYS", "10")
    code, out, _ = cli(capsys, "purge", "--audit-url", url, "--dry-run")
    assert code == 0 and "of 7 audit record(s)" in out and "retention 10 days" in out
    monkeypatch.setenv("RELIEF_RISK_RETENTION_DAYS", "0")
    assert cli(capsys, "purge", "--audit-url", url)[0] == 2


def test_reproducing_a_purged_record_says_it_was_purged_and_when(db, capsys, policy):
    from domain.reproduce import RecordPurged, reproduce

    store, url = db
    old, _ = old_and_new(store)
    store.purge(dt.datetime.now(dt.UTC) - dt.timedelta(days=1095))
    purged = store.get(old[1].request_id)
    with pytest.raises(RecordPurged, match=rf"purged on {purged.purged_at.date().isoformat()}"):
        reproduce(purged, policy)
    code, _, err = cli(capsys, "reproduce", old[1].request_id, "--audit-url", url)
    assert code == 3 and err.startswith(f"PURGED: audit record {old[1].request_id} was purged on "
                                        f"{purged.purged_at.date().isoformat()}")
    assert "cannot be re-scored" in err


# ---- the service's checkpointer ----------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_checkpointer_writes_when_enough_records_were_added(db, keys, tmp_path):
    store, _ = db
    cps = tmp_path / "checkpoints.jsonl"
    c = cpt.Checkpointer(store, keys[0], cps, every_records=10, every_seconds=3600, poll_seconds=0.01)
    c.start()
    try:
        fill(store, 3)                                   # 6 records and events: below 10
        time.sleep(0.1)
        assert lines(cps) == 0
        fill(store, 2)                                   # 10
        assert wait_for(lambda: lines(cps) == 1)
        time.sleep(0.1)
        assert lines(cps) == 1                           # nothing grew since
        store.write([record(99)])                        # one more: not enough
        time.sleep(0.1)
        assert lines(cps) == 1
    finally:
        c.close(final=False)
    (cp,), _ = cpt.read(cps)
    assert (cp.audit.seq, cp.access.seq) == (5, 5) and cpt.verify_file(store, cps, keys[3]) == []


def test_the_checkpointer_writes_when_enough_time_passed(db, keys, tmp_path):
    store, _ = db
    cps = tmp_path / "checkpoints.jsonl"
    c = cpt.Checkpointer(store, keys[0], cps, every_records=10**6, every_seconds=0.2, poll_seconds=0.01)
    c.start()
    try:
        time.sleep(0.3)
        assert lines(cps) == 0                           # nothing to sign yet
        store.write([record(1)])
        assert wait_for(lambda: lines(cps) == 1)
        time.sleep(0.4)
        assert lines(cps) == 1                           # time passed, but nothing grew
        AccessLog(store).record("access_search", Caller("auditor", "k"))
        assert wait_for(lambda: lines(cps) == 2)
    finally:
        c.close(final=False)
    checkpoints, _ = cpt.read(cps)
    assert [(x.audit.seq, x.access.seq) for x in checkpoints] == [(1, 0), (1, 1)]


def test_closing_signs_what_grew_since_the_last_checkpoint(db, keys, tmp_path):
    store, _ = db
    cps = tmp_path / "checkpoints.jsonl"
    c = cpt.Checkpointer(store, keys[0], cps, every_records=1000, every_seconds=3600)
    c.start()
    fill(store, 2)
    c.close()
    (cp,), _ = cpt.read(cps)
    assert (cp.audit.seq, cp.access.seq) == (2, 2)


def test_two_checkpointers_on_one_file_take_turns_through_it(db, keys, tmp_path):
    store, _ = db
    cps = tmp_path / "checkpoints.jsonl"
    a, b = (cpt.Checkpointer(store, keys[0], cps, every_records=4, every_seconds=3600) for _ in range(2))
    fill(store, 2)
    assert a.tick() is not None and b.tick() is None     # b reads what a signed: nothing new for it
    fill(store, 1)
    assert a.tick() is None and b.tick() is None         # 2 added: below 4
    fill(store, 1)
    assert b.tick() is not None and a.tick() is None
    assert lines(cps) == 2 and cpt.verify_file(store, cps, keys[3]) == []


def test_a_failing_round_is_logged_without_the_url_and_retried(keys, tmp_path, caplog):
    store = AuditStore("postgresql+psycopg://relief:s3cret-pw@127.0.0.1:1/none")
    cps = tmp_path / "checkpoints.jsonl"
    c = cpt.Checkpointer(store, keys[0], cps, every_records=1, every_seconds=0.05, poll_seconds=0.01)
    with caplog.at_level(logging.WARNING, logger="store.checkpoint"):
        c.start()
        assert wait_for(lambda: c.failures >= 3)         # the thread lives on, round after round
        c.close()
    assert c.written == 0 and not cps.exists()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint not written (OperationalError)" in said
    assert "s3cret" not in said and "relief" not in said and "127.0.0.1" not in said
    store.dispose()


def test_the_checkpointer_refuses_a_bad_key_at_start_up(db, keys, tmp_path):
    store, _ = db
    keys[0].chmod(0o604)
    with pytest.raises(cpt.CheckpointKeyError, match="chmod 600"):
        cpt.Checkpointer(store, keys[0], tmp_path / "cp.jsonl")
    keys[0].chmod(0o600)
    with pytest.raises(ValueError, match="every_records"):
        cpt.Checkpointer(store, keys[0], tmp_path / "cp.jsonl", every_records=0)


def test_the_hash_layout_the_search_uses_is_the_stores(db):
    """The swap search re-hashes rows from their parts; it must agree with record_hash and event_hash."""
    store, _ = db
    fill(store, 3)
    for chain, (table, _, hash_of) in CHAINS.items():
        rows = [dict(r) for r in store.rows(table)]
        link = cpt.AUDIT if chain == "audit" else cpt.ACCESS
        for prev, row in zip([GENESIS, *(r["record_hash"] for r in rows)], rows, strict=False):
            assert cpt._Linker(link, row)(prev) == hash_of(prev, row) == row["record_hash"]


if os.environ.get("RELIEF_RISK_BENCH_CHECKPOINT"):  # timing, not a test of behaviour: run it by hand
    def test_time_verify_per_10k_records(db, keys, tmp_path):
        store, _ = db
        for _ in range(10):
            store.write([record(i) for i in range(1000)])
        cps = tmp_path / "checkpoints.jsonl"
        cpt.append(cps, cpt.sign(store, keys[2]))
        t = time.perf_counter()
        store.verify()
        AccessLog(store).verify()
        chains = time.perf_counter() - t
        t = time.perf_counter()
        assert cpt.verify_file(store, cps, keys[3], internal=False) == []
        against = time.perf_counter() - t
        print(f"\n{store.engine.dialect.name}: chains {chains:.3f}s per 10k records, checkpoints {against:.4f}s")
