"""Signed checkpoints of both chain heads, kept outside the database.

The hash chains (:meth:`AuditStore.verify`, :meth:`AccessLog.verify`) find a record that was
edited, deleted or moved, but only against the chain head kept in the same database. Whoever can
write there can also cut the tail off and reset the head, or edit a record and recompute every
later hash, and the chain alone still holds. A checkpoint pins the heads somewhere such a writer
cannot reach: every so often the service signs both heads (seq and hash of the audit trail and of
the access log) with an Ed25519 key that is not in the database and appends the signed line to a
file the database's users cannot write. :func:`verify_against` then checks that every checkpoint's
signature holds and that the chains still extend it: the record at each signed seq exists and has
the signed hash. Because every record's hash covers the one before it, that one record stands for
the whole chain up to it.

A checkpoint is one line of canonical JSON (keys sorted, no spaces, ASCII)::

    {"access":{"head":"…","seq":12},"audit":{"head":"…","seq":3400},"created_at":"2026-…Z",
     "format":"relief-risk-checkpoint/1","key":"<sha256 of the raw public key>","signature":"<base64>"}

The signature is over the same canonical JSON without ``signature``. Lines are appended under an
``flock`` in one ``write`` and ``fsync``'d, so several worker processes may each run a
:class:`Checkpointer` on one file.

What a failing check means is said by :class:`Problem` (its ``kind`` one of :class:`Kind`):

- ``truncated``: the table ends before a signed seq (the tail was cut and the head reset);
- ``rewritten``: the record at a signed seq has another hash, and no swap of one adjacent pair
  explains it; the change lies between the last checkpoint that still holds and the first that fails;
- ``reordered``: as above, but putting one adjacent pair back in order (renumbered, hashes
  recomputed) reproduces the signed hash;
- ``rewritten or reordered``: as above, the range too long to search (over ``search_limit`` records);
- ``deleted``: the record at a signed seq is missing while later ones exist;
- ``bad signature``, ``other key``, ``malformed``: the checkpoint line itself was altered or forged,
  was signed by another key, or is not a checkpoint;
- ``broken chain``: the chain's own check (which runs first) failed;
- ``no checkpoints``: the file holds none.

Over 400 lines because it is one file format end to end: the keys, the signed fields, the file's
append and read, the check against the store (with the swapped-pair search) and the service's
periodic writer all turn on the same line, and a change to one must be made with the others in view.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Table, func, select

from store.access import AccessLog, event_parts
from store.audit import ACCESS_CHAIN, AUDIT_CHAIN, GENESIS, AuditStore, ChainProblem, encode_parts, record_parts
from store.schema import access_log, audit_chain, audit_records

log = logging.getLogger(__name__)

FORMAT = "relief-risk-checkpoint/1"
KEY_FILE, PUBLIC_KEY_FILE = "checkpoint.key", "checkpoint.pub"
SEARCH_LIMIT = 5000  # records between the last checkpoint that holds and the first that fails, searched for a swap
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"format", "created_at", "audit", "access", "key", "signature"}


class CheckpointKeyError(ValueError):
    """A checkpoint key file that cannot be used: missing, not an Ed25519 key, or open to others."""


class Kind(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad signature"
    OTHER_KEY = "other key"
    NO_CHECKPOINTS = "no checkpoints"
    BROKEN = "broken chain"
    TRUNCATED = "truncated"
    DELETED = "deleted"
    REWRITTEN = "rewritten"
    REORDERED = "reordered"
    REWRITTEN_OR_REORDERED = "rewritten or reordered"


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold. ``chain``: "audit" or "access" (None: the line itself);
    ``line``: the checkpoint file's line; ``seq``: the signed seq concerned; ``since``/``upto``: the
    change lies in records ``since + 1`` .. ``upto`` (``reordered``: the pair ``upto - 1``, ``upto``)."""

    kind: Kind
    message: str
    chain: str | None = None
    line: int | None = None
    seq: int | None = None
    since: int | None = None
    upto: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class Head:
    seq: int
    head: str


@dataclass(frozen=True)
class Checkpoint:
    """A signed pair of chain heads. ``line``: where :func:`read` found it (not signed)."""

    created_at: str          # UTC, ISO 8601 with "Z"
    audit: Head
    access: Head
    key: str                 # fingerprint of the signing key's public half (:func:`fingerprint`)
    signature: str           # base64 Ed25519 signature of :meth:`message`
    format: str = FORMAT
    line: int | None = field(default=None, compare=False)

    def signed(self) -> dict[str, Any]:
        return {"format": self.format, "created_at": self.created_at,
                "audit": {"seq": self.audit.seq, "head": self.audit.head},
                "access": {"seq": self.access.seq, "head": self.access.head}, "key": self.key}

    def message(self) -> bytes:
        """The bytes signed: the canonical JSON of every field but the signature."""
        return _canonical(self.signed())

    def to_line(self) -> str:
        return _canonical({**self.signed(), "signature": self.signature}).decode("ascii")

    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))

    def where(self) -> str:
        return f"line {self.line} ({self.created_at})" if self.line is not None else f"of {self.created_at}"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# ---- keys -------------------------------------------------------------------------------------------
def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: what a checkpoint names its key by."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def write_keys(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new key pair: ``checkpoint.key`` (private, PEM, mode 600) and ``checkpoint.pub`` (public,
    PEM) in ``directory`` (made, mode 700, if missing). Refuses (:class:`FileExistsError`) if either
    file exists: an existing key is never overwritten."""
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = d / KEY_FILE, d / PUBLIC_KEY_FILE
    for p in (private, public):
        if p.exists():
            raise FileExistsError(f"{p} exists; a checkpoint key is never overwritten (move it away first)")
    key = generate_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new(private, pem, 0o600)
    _write_new(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    return private, public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # exactly this mode, whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The signing key; refuses a file that group or others may read or write, or that is not an
    Ed25519 private key, with a :class:`CheckpointKeyError` saying what to do."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise CheckpointKeyError(f"checkpoint key {p} does not exist (make one with: relief-risk keygen --out DIR)") \
            from None
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise CheckpointKeyError(f"checkpoint key {p} is open to group or others (mode {mode:03o}); the signing "
                                 f"key must be readable by its owner only: chmod 600 {p}")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointKeyError(f"checkpoint key {p} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"checkpoint key {p} is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    p = Path(path)
    try:
        key = serialization.load_pem_public_key(p.read_bytes())
    except FileNotFoundError:
        raise CheckpointKeyError(f"public key {p} does not exist") from None
    except (ValueError, TypeError) as exc:
        raise CheckpointKeyError(f"public key {p} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointKeyError(f"public key {p} is not an Ed25519 key")
    return key


# ---- signing, the file ----------------------------------------------------------------------------------
def heads(store: AuditStore) -> tuple[Head, Head]:
    """Both chain heads (the audit trail's, the access log's), read in one statement."""
    with store.engine.connect() as conn:
        rows = {int(i): Head(int(s), str(h)) for i, s, h in conn.execute(
            select(audit_chain.c.id, audit_chain.c.seq, audit_chain.c.head_hash)
            .where(audit_chain.c.id.in_([AUDIT_CHAIN, ACCESS_CHAIN])))}
    genesis = Head(0, GENESIS)
    return rows.get(AUDIT_CHAIN, genesis), rows.get(ACCESS_CHAIN, genesis)


def sign_heads(audit: Head, access: Head, private_key: Ed25519PrivateKey,
               now: dt.datetime | None = None) -> Checkpoint:
    t = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    unsigned = Checkpoint(created_at=t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), audit=audit, access=access,
                          key=fingerprint(private_key.public_key()), signature="")
    signature = base64.b64encode(private_key.sign(unsigned.message())).decode("ascii")
    return Checkpoint(**{**unsigned.__dict__, "signature": signature})


def sign(store: AuditStore, private_key: Ed25519PrivateKey, now: dt.datetime | None = None) -> Checkpoint:
    """A checkpoint of the store's current chain heads, signed."""
    audit, access = heads(store)
    return sign_heads(audit, access, private_key, now)


def append(path: str | os.PathLike[str], cp: Checkpoint) -> None:
    """Appends ``cp`` as one line: under an exclusive ``flock`` (several processes may append), in
    one ``write``, then ``fsync``. If a crash left the file without a final newline, the torn line
    is ended first, so it stays one malformed line and this one stays whole."""
    data = (cp.to_line() + "\n").encode("ascii")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if size == 0:  # a new file: its name must survive a crash too
                _fsync_dir(Path(path).parent)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parse(text: str, line: int | None = None) -> Checkpoint:
    """One line as a :class:`Checkpoint`; :class:`ValueError` saying what is wrong with it."""
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if set(obj) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(obj)), sorted(set(obj) - _FIELDS)
        raise ValueError("fields " + "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                                            f"unknown {', '.join(extra)}" if extra else "") if x))
    if obj["format"] != FORMAT:
        raise ValueError(f"format {str(obj['format'])[:40]!r}, expected {FORMAT!r}")
    chain_heads = []
    for name in ("audit", "access"):
        h = obj[name]
        if not (isinstance(h, dict) and set(h) == {"seq", "head"} and type(h["seq"]) is int and h["seq"] >= 0
                and isinstance(h["head"], str) and _HEX64.fullmatch(h["head"])):
            raise ValueError(f"{name} is not {{seq: a whole number ≥ 0, head: 64 hex digits}}")
        chain_heads.append(Head(h["seq"], h["head"]))
    if not (isinstance(obj["created_at"], str) and obj["created_at"].endswith("Z")):
        raise ValueError("created_at is not a UTC time ending in Z")
    try:
        dt.datetime.fromisoformat(obj["created_at"].replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("created_at is not an ISO 8601 time") from None
    if not (isinstance(obj["key"], str) and _HEX64.fullmatch(obj["key"])):
        raise ValueError("key is not a fingerprint (64 hex digits)")
    if not isinstance(obj["signature"], str):
        raise ValueError("signature is not text")
    return Checkpoint(created_at=obj["created_at"], audit=chain_heads[0], access=chain_heads[1], key=obj["key"],
                      signature=obj["signature"], format=obj["format"], line=line)


def read(path: str | os.PathLike[str]) -> tuple[list[Checkpoint], list[Problem]]:
    """The checkpoints of a file, in file order, and a ``malformed`` :class:`Problem` for each line
    that is not one (blank lines are skipped). Raises only if the file cannot be read."""
    checkpoints: list[Checkpoint] = []
    problems: list[Problem] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                problems.append(Problem(Kind.MALFORMED, f"checkpoint line {n} is not UTF-8 text", line=n))
                continue
            if not text:
                continue
            try:
                checkpoints.append(parse(text, n))
            except ValueError as exc:
                problems.append(Problem(Kind.MALFORMED, f"checkpoint line {n} is not a checkpoint: {exc}", line=n))
    return checkpoints, problems


def last(path: str | os.PathLike[str], tail: int = 8192) -> Checkpoint | None:
    """The file's last well-formed checkpoint among its final ``tail`` bytes (None: no file, or none
    there); what the checkpointer reads to know what any worker signed last. Signature unchecked."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail))
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    if size > tail:
        lines = lines[1:]  # the first may be cut
    for raw in reversed(lines):
        try:
            return parse(raw.decode("utf-8").strip())
        except (ValueError, UnicodeDecodeError):
            continue
    return None


def signature_holds(cp: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(base64.b64decode(cp.signature, validate=True), cp.message())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# ---- verifying ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Chain:
    name: str                     # as in a checkpoint: "audit" / "access"
    label: str                    # in messages
    noun: str
    table: Table
    head_id: int
    parts: Callable[[str, dict[str, Any]], list[str]]


AUDIT = _Chain("audit", "audit trail", "record", audit_records, AUDIT_CHAIN, record_parts)
ACCESS = _Chain("access", "access log", "access event", access_log, ACCESS_CHAIN, event_parts)
_SENTINEL = "\x00prev\x00"


class _Linker:
    """A row's hash as a function of the previous hash, its own part encoded once: the search for a
    swapped pair re-hashes the same rows thousands of times."""

    __slots__ = ("before", "after")

    def __init__(self, chain: _Chain, row: dict[str, Any]) -> None:
        parts = chain.parts(_SENTINEL, row)
        i = parts.index(_SENTINEL)
        self.before = hashlib.sha256(encode_parts(parts[:i]))
        self.after = encode_parts(parts[i + 1:])

    def __call__(self, prev: str) -> str:
        h = self.before.copy()
        b = prev.encode("utf-8")
        h.update(len(b).to_bytes(8, "big") + b)   # as encode_parts([prev])
        h.update(self.after)
        return h.hexdigest()


def verify_against(store: AuditStore, checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey, *,
                   internal: bool = True, search_limit: int = SEARCH_LIMIT) -> list[Problem]:
    """Every problem with the store against the checkpoints (empty: all hold). ``internal``: run the
    chains' own checks first (:meth:`AuditStore.verify`, :meth:`AccessLog.verify`; pass False if the
    caller ran them). Then each checkpoint's signature and key, and for each chain that the record at
    every signed seq exists and has the signed hash; a failure is named and narrowed down (see the
    module's docstring)."""
    problems: list[Problem] = []
    if internal:
        _, p = store.verify()
        if p is not None:
            problems.append(broken(AUDIT.name, p))
        _, p = AccessLog(store).verify()
        if p is not None:
            problems.append(broken(ACCESS.name, p))
    mine = fingerprint(public_key)
    good: list[Checkpoint] = []
    for cp in checkpoints:
        if cp.key != mine:
            problems.append(Problem(Kind.OTHER_KEY, f"checkpoint {cp.where()} was signed by key {cp.key[:16]}…, "
                                                    f"not by the public key given ({mine[:16]}…)", line=cp.line))
        elif not signature_holds(cp, public_key):
            problems.append(Problem(Kind.BAD_SIGNATURE, f"checkpoint {cp.where()}: its signature does not hold; the "
                                                        "line was altered or forged", line=cp.line))
        else:
            good.append(cp)
    for chain in (AUDIT, ACCESS):
        problems += _extends(store, chain, good, search_limit)
    return problems


def verify_file(store: AuditStore, path: str | os.PathLike[str], public_key: Ed25519PublicKey, *,
                internal: bool = True, search_limit: int = SEARCH_LIMIT) -> list[Problem]:
    """:func:`read` and :func:`verify_against` in one; a file with no checkpoint is a problem too."""
    checkpoints, problems = read(path)
    if not checkpoints and not problems:
        problems.append(Problem(Kind.NO_CHECKPOINTS, f"{path} holds no checkpoint: nothing to verify against"))
    return problems + verify_against(store, checkpoints, public_key, internal=internal, search_limit=search_limit)


def broken(chain: str, p: ChainProblem) -> Problem:
    """A chain's own check's finding as a :class:`Problem`."""
    c = AUDIT if chain == AUDIT.name else ACCESS
    rid = f" (request_id {p.request_id})" if p.request_id else ""
    return Problem(Kind.BROKEN, f"the {c.label}'s own chain is broken at {c.noun} {p.seq}{rid}: {p.reason}",
                   chain=chain, seq=p.seq)


def _extends(store: AuditStore, chain: _Chain, checkpoints: list[Checkpoint], limit: int) -> list[Problem]:
    signed = sorted(((getattr(cp, chain.name), cp) for cp in checkpoints), key=lambda x: (x[0].seq, x[1].line or 0))
    if not signed:
        return []
    t = chain.table
    with store.engine.connect() as conn:
        end = int(conn.execute(select(func.coalesce(func.max(t.c.seq), 0))).scalar_one())
        wanted = sorted({h.seq for h, _ in signed if 0 < h.seq <= end})
        stored: dict[int, str] = {}
        for i in range(0, len(wanted), 500):
            stored.update((int(s), str(h)) for s, h in conn.execute(
                select(t.c.seq, t.c.record_hash).where(t.c.seq.in_(wanted[i:i + 500]))))
    holds: list[tuple[Head, Checkpoint]] = []
    fails: list[tuple[Head, Checkpoint]] = []
    deleted: list[tuple[Head, Checkpoint]] = []
    cut: list[tuple[Head, Checkpoint]] = []
    for h, cp in signed:
        if h.seq == 0:
            (holds if h.head == GENESIS else fails).append((h, cp))
        elif h.seq > end:
            cut.append((h, cp))
        elif h.seq not in stored:
            deleted.append((h, cp))
        elif stored[h.seq] == h.head:
            holds.append((h, cp))
        else:
            fails.append((h, cp))
    problems: list[Problem] = []
    label, noun = chain.label, chain.noun
    if cut:
        h, cp = cut[-1]
        below = [x for x in holds if x[0].seq <= end]
        still = (f"; it still extends the checkpoint {below[-1][1].where()} at {noun} {below[-1][0].seq}" if below
                 else "")
        problems.append(Problem(
            Kind.TRUNCATED,
            f"the {label} ends at {noun} {end}, but checkpoint {cp.where()} signed {noun} {h.seq} "
            f"({h.head[:12]}…): {noun}s {end + 1}–{h.seq} at least were cut off and the head reset"
            f"{still} ({len(cut)} checkpoint(s) beyond the end)",
            chain=chain.name, line=cp.line, seq=h.seq, since=end, upto=h.seq))
    for h, cp in deleted[:1]:
        problems.append(Problem(Kind.DELETED, f"{noun} {h.seq} of the {label}, signed by checkpoint {cp.where()}, is "
                                              "missing while later ones exist: deleted",
                                chain=chain.name, line=cp.line, seq=h.seq))
    if fails:
        h, cp = fails[0]
        before = [x for x in holds if x[0].seq < h.seq]
        a, a_head, a_where = (before[-1][0].seq, before[-1][0].head, f"checkpoint {before[-1][1].where()}") \
            if before else (0, GENESIS, None)
        problems.append(_changed(store, chain, a, a_head, a_where, h, cp, len(fails) - 1, limit))
    return problems


def _changed(store: AuditStore, chain: _Chain, a: int, a_head: str, a_where: str | None, h: Head, cp: Checkpoint,
             later: int, limit: int) -> Problem:
    """The record at signed seq ``h.seq`` has another hash; the last checkpoint that holds is at ``a``.
    Tries to put one adjacent pair back in order (``limit`` records at most)."""
    b, label, noun = h.seq, chain.label, chain.noun
    then = f" ({later} later checkpoint(s) fail with it)" if later else ""
    held = f"it held up to {noun} {a} ({a_where})" if a_where else "no earlier checkpoint holds"
    where = (f"{noun} {b} of the {label} has another hash than checkpoint {cp.where()} signed ({h.head[:12]}…); "
             f"{held}, so the change lies in {noun}s {a + 1}–{b}")
    if b - a > limit:
        return Problem(Kind.REWRITTEN_OR_REORDERED,
                       f"{where}: rewritten or reordered, every later hash recomputed (the range is over {limit} "
                       f"{noun}s, not searched for a swapped pair){then}",
                       chain=chain.name, line=cp.line, seq=b, since=a, upto=b)
    pair = _find_swap(store, chain, a, a_head, b, h.head)
    if pair is not None:
        return Problem(Kind.REORDERED,
                       f"{where}: {noun}s {pair} and {pair + 1} were swapped and renumbered, every later hash "
                       f"recomputed (putting them back in order reproduces the signed hash){then}",
                       chain=chain.name, line=cp.line, seq=b, since=pair - 1, upto=pair + 1)
    return Problem(Kind.REWRITTEN,
                   f"{where}: rewritten, every later hash recomputed (no swap of one adjacent pair explains "
                   f"it){then}", chain=chain.name, line=cp.line, seq=b, since=a, upto=b)


def _find_swap(store: AuditStore, chain: _Chain, a: int, a_head: str, b: int, target: str) -> int | None:
    """The ``i`` in ``a + 1 .. b`` such that swapping rows ``i`` and ``i + 1`` back (renumbered, hashes
    recomputed from ``a``) gives ``target`` at ``b``; None if none does. Pairs whose times run
    backwards are tried first (a swap usually leaves that trace), then every other."""
    rows = [dict(r) for r in store.rows(chain.table, after=a, upto=b + 1)]
    if len(rows) < 2 or [r["seq"] for r in rows[: b - a]] != list(range(a + 1, b + 1)):
        return None  # the range has gaps: that is deletion, which the chain's own check names
    link = [_Linker(chain, r) for r in rows]
    chained = [a_head]                # chained[k]: the hash at a + k along the rows as they are now
    for k in range(b - a):
        chained.append(link[k](chained[k]))

    def reproduces(i: int) -> bool:   # rows i and i + 1 (1-based seqs) swapped back
        k = i - a - 1                 # index of row i
        x = _Linker(chain, {**rows[k + 1], "seq": i})(chained[k])
        if i == b:
            return x == target
        y = _Linker(chain, {**rows[k], "seq": i + 1})(x)
        for j in range(k + 2, b - a):
            y = link[j](y)
        return y == target

    candidates = [i for i in range(a + 1, b + 1) if i - a < len(rows)]
    inverted = [i for i in candidates if _time(rows[i - a - 1]) > _time(rows[i - a])]
    seen = set(inverted)
    for i in inverted + [i for i in candidates if i not in seen]:
        if reproduces(i):
            return i
    return None


def _time(row: dict[str, Any]) -> dt.datetime:
    t = row["created_at"]
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


# ---- the service's periodic checkpoints ------------------------------------------------------------------
class Checkpointer:
    """Signs both chain heads every so often and appends them to ``out_path``, in a daemon thread.

    A checkpoint is written when either chain has grown since the last one in the file (any
    worker's; this one's if the file cannot be read) and ``every_records`` records and events were
    added or ``every_seconds`` passed since it (with none yet: since the chains began, since this
    checkpointer was made). The heads are polled every ``poll_seconds`` (default:
    a tenth of ``every_seconds``, at most 5 s): one small query. A round that fails is logged (the
    exception's type only, never its message, which may hold a connection string) and retried at the
    next; nothing here raises into the service once started. Several worker processes may each run
    one on the same file: appends are ``flock``'d, and each reads the file's last line to know what
    was signed, so they rarely sign the same heads twice. The key is loaded here, so a missing or
    open key fails at start-up (:class:`CheckpointKeyError`), not later."""

    def __init__(self, store: AuditStore, key_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                 every_records: int = 1000, every_seconds: float = 300.0, *, poll_seconds: float | None = None) -> None:
        if every_records < 1 or not every_seconds > 0:
            raise ValueError("every_records must be ≥ 1 and every_seconds > 0")
        self.store, self.out_path = store, Path(out_path)
        self.every_records, self.every_seconds = every_records, float(every_seconds)
        self.poll_seconds = poll_seconds if poll_seconds is not None else min(5.0, self.every_seconds / 10)
        self._key = load_private_key(key_path)
        self._mine = fingerprint(self._key.public_key())
        self._last: Checkpoint | None = None
        self._started = dt.datetime.now(dt.UTC)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()   # one round at a time (the thread's, close()'s)
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.poll_seconds):
                return

    def close(self, final: bool = True) -> None:
        """Stops the thread; ``final``: then signs the heads once more if either chain grew since the
        last checkpoint (a worker that stops leaves its last records signed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, 2 * self.poll_seconds))
            self._thread = None
        if final:
            self.tick(force=True)

    def tick(self, force: bool = False) -> Checkpoint | None:
        """One round: the checkpoint written, or None (nothing due, or it failed and was logged).
        ``force``: write if either chain grew at all, whatever the thresholds."""
        with self._lock:
            try:
                return self._round(force)
            except Exception as exc:  # never into the service: logged, retried next round
                self.failures += 1
                log.warning("checkpoint not written (%s); retried in %.0f s", type(exc).__name__, self.poll_seconds)
                return None

    def _round(self, force: bool) -> Checkpoint | None:
        audit, access = heads(self.store)
        prev = self._previous()
        now = dt.datetime.now(dt.UTC)
        if prev is None:  # nothing signed yet: count from the start of the chains, wait from this one's
            grown, added = audit.seq > 0 or access.seq > 0, audit.seq + access.seq
            waited = (now - self._started).total_seconds()
        else:
            if audit.seq < prev.audit.seq or access.seq < prev.access.seq:
                log.error("a chain head is behind the last checkpoint (audit %d < %d or access %d < %d): records "
                          "were cut off; run relief-risk verify", audit.seq, prev.audit.seq, access.seq,
                          prev.access.seq)
            grown = audit.seq > prev.audit.seq or access.seq > prev.access.seq
            added = max(0, audit.seq - prev.audit.seq) + max(0, access.seq - prev.access.seq)
            waited = (now - prev.when()).total_seconds()
        if not grown or not (force or added >= self.every_records or waited >= self.every_seconds):
            return None
        cp = sign_heads(audit, access, self._key)
        append(self.out_path, cp)
        self._last = cp
        self.written += 1
        return cp

    def _previous(self) -> Checkpoint | None:
        """The last checkpoint of the file (appended last, by whichever worker) if this key signed it,
        else (no file yet, unreadable, another key's line) the last this checkpointer wrote."""
        try:
            found = last(self.out_path)
        except OSError:
            found = None
        return found if found is not None and found.key == self._mine else self._last

