"""Service settings, typed and read once in the entry point (never at import time)."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.labels import ROLES as ROLE_LABELS
from features.risks import RISKS
from serving.throttle import parse_rate

ROLES = tuple(ROLE_LABELS)  # platform, auditor, admin: the keys of their Chinese names, one list
_TOWN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@functools.lru_cache(maxsize=256)
def key_id(key: str) -> str:
    """A key's stable, non-secret fingerprint, what audit records and the access log name: ``k-`` and
    12 hex digits of PBKDF2-SHA256 (200,000 rounds) of the key. The same key gives the same id on
    every host and restart; the slow hash makes guessing a key from its id as slow as guessing it at
    login (keys are long random strings: ``openssl rand -hex 24``)."""
    return "k-" + hashlib.pbkdf2_hmac("sha256", key.encode(), b"relief-risk key id v1", 200_000, dklen=6).hex()


@dataclass(frozen=True)
class Grant:
    """What one key may do: its roles, and the towns it is limited to (None: every town)."""

    roles: frozenset[str]
    key_id: str
    towns: frozenset[str] | None = None


def parse_api_keys(value: str) -> dict[str, Grant]:
    """``role:key,role@town+town:key`` → {key: grant}. A key may serve several roles; a role written
    ``role@town+town`` limits the key to those towns (by their codes, e.g. ``platform@yangshe+jingang``):
    it scores and reads households of those towns only. A key's items must agree on its towns. Keys
    shorter than 12 characters are refused."""
    roles: dict[str, set[str]] = {}
    towns: dict[str, frozenset[str] | None] = {}
    for i, item in enumerate(p.strip() for p in value.split(",")):
        if not item:
            continue
        head, sep, key = item.partition(":")
        role, at, scope = head.strip().partition("@")
        key = key.strip()
        if not sep or role not in ROLES:
            raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: expected role:key or role@town+town:key with role "
                             f"one of {ROLES}")
        if len(key) < 12:
            raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: a key must have at least 12 characters")
        limited: frozenset[str] | None = None
        if at:
            names = [t.strip() for t in scope.split("+")]
            bad = [t for t in names if not _TOWN.match(t)]
            if bad or not names:
                raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: towns are codes joined by '+' "
                                 "(e.g. platform@yangshe+jingang:KEY)")
            limited = frozenset(names)
        if key in towns and towns[key] != limited:
            raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: the same key with other towns than before")
        towns[key] = limited
        roles.setdefault(key, set()).add(role)
    if not roles:
        raise ValueError("RELIEF_RISK_API_KEYS has no keys: the service never starts open")
    return {k: Grant(frozenset(v), key_id(k), towns[k]) for k, v in roles.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELIEF_RISK_", extra="ignore")

    api_keys: SecretStr = Field(description="comma-separated role:key pairs; roles platform, auditor, admin; "
                                "role@town+town:key limits a key to towns")
    audit_url: str = Field("sqlite:///audit.db", description="SQLAlchemy URL of the audit store")
    risks: list[str] = Field(default=list(RISKS), description="registered model names to serve; by default every "
                             "risk of the contract that has a model under the alias")
    model_alias: str = Field("champion", description="registered model alias the service loads and serves for "
                             "each risk")
    mlflow_tracking_uri: str | None = Field(None, description="defaults to MLFLOW_TRACKING_URI or MLflow's default")
    policy_path: str | None = Field(None, description="policy parameter file; the packaged one by default")
    max_body_bytes: int = Field(8 * 1024 * 1024, description="largest request body accepted, in bytes, before 413")
    scoring_threads: int = Field(2, ge=1, le=64, description="threads per worker process that validate and "
                                 "score at once (CPU work; more than the cores only contend for the GIL)")
    max_batch_body_bytes: int = Field(128 * 1024 * 1024, description="largest body of /v1/score/batch accepted, in "
                                      "bytes, before 413")
    login_failures: str = Field("5/minute", description="failed sign-ins to the auditor's pages allowed per client "
                                "address before 429 (per worker process)")
    funnel_ttl: float = Field(60.0, ge=0, le=86_400, description="seconds the funnel from flag to help (GET "
                              "/v1/models, the model page) is kept before the store is read again")
    key_rate: str | None = Field(None, description="requests allowed per API key, e.g. 600/minute, before 429 "
                                 "(per worker process); unset: no limit")
    secure_cookies: bool = Field(False, description="always set the session cookie's Secure flag (behind a proxy "
                                 "that ends TLS, where the service itself sees plain HTTP)")
    checkpoint_key: str | None = Field(None, description="Ed25519 private key (relief-risk keygen) the service signs "
                                       "checkpoints of the trail's head with; unset: the service writes none")
    checkpoint_file: str | None = Field(None, description="file the service appends its signed checkpoints to, "
                                        "where the database's users cannot write")
    checkpoint_every_records: int = Field(1000, ge=1, le=10**9, description="a checkpoint after this many new "
                                          "records or access events")
    checkpoint_every_seconds: float = Field(300.0, gt=0, le=86400 * 7, description="… or after this many seconds "
                                            "with anything new")
    log_format: Literal["json", "text"] = Field("json", description="how `serve` writes its log lines to standard "
                                                "error: json (one object a line: time, level, logger, message, the "
                                                "request's request_id) or text (for a developer's terminal)")

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, v: SecretStr) -> SecretStr:
        parse_api_keys(v.get_secret_value())
        return v

    @field_validator("login_failures", "key_rate")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rate(v)
        return v

    @model_validator(mode="after")
    def _checkpoints_both_or_neither(self) -> Settings:
        if bool(self.checkpoint_key) != bool(self.checkpoint_file):
            raise ValueError("RELIEF_RISK_CHECKPOINT_KEY and RELIEF_RISK_CHECKPOINT_FILE go together: set both "
                             "for the service to sign checkpoints, or neither")
        return self

    @field_validator("risks")
    @classmethod
    def _known_risks(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in RISKS]
        if unknown or not v or len(set(v)) != len(v):
            raise ValueError(f"RELIEF_RISK_RISKS: expected distinct risks among {RISKS}, got {v}")
        return v

    @property
    def risks_explicit(self) -> bool:
        """Whether the risks were configured (then each must load) rather than defaulted."""
        return "risks" in self.model_fields_set

    @property
    def keys(self) -> dict[str, Grant]:
        return parse_api_keys(self.api_keys.get_secret_value())
