"""Service settings, typed and read once in the entry point (never at import time)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.risks import RISKS

ROLES = ("platform", "auditor", "admin")


def parse_api_keys(value: str) -> dict[str, frozenset[str]]:
    """``role:key,role:key`` → {key: roles}. A key may serve several roles; empty keys are refused."""
    keys: dict[str, set[str]] = {}
    for i, item in enumerate(p.strip() for p in value.split(",")):
        if not item:
            continue
        role, sep, key = item.partition(":")
        role, key = role.strip(), key.strip()
        if not sep or role not in ROLES:
            raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: expected role:key with role one of {ROLES}")
        if len(key) < 12:
            raise ValueError(f"RELIEF_RISK_API_KEYS item {i + 1}: a key must have at least 12 characters")
        keys.setdefault(key, set()).add(role)
    if not keys:
        raise ValueError("RELIEF_RISK_API_KEYS has no keys: the service never starts open")
    return {k: frozenset(v) for k, v in keys.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELIEF_RISK_", extra="ignore")

    api_keys: SecretStr = Field(description="comma-separated role:key pairs; roles platform, auditor, admin")
    audit_url: str = Field("sqlite:///audit.db", description="SQLAlchemy URL of the audit store")
    risks: list[str] = Field(default=list(RISKS), description="registered model names to serve; by default every "
                             "risk of the contract that has a model under the alias")
    model_alias: str = "champion"
    mlflow_tracking_uri: str | None = Field(None, description="defaults to MLFLOW_TRACKING_URI or MLflow's default")
    policy_path: str | None = Field(None, description="policy parameter file; the packaged one by default")
    max_body_bytes: int = 8 * 1024 * 1024
    scoring_threads: int = Field(2, ge=1, le=64, description="threads per worker process that validate and "
                                 "score at once (CPU work; more than the cores only contend for the GIL)")
    max_batch_body_bytes: int = 128 * 1024 * 1024

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, v: SecretStr) -> SecretStr:
        parse_api_keys(v.get_secret_value())
        return v

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
    def keys(self) -> dict[str, frozenset[str]]:
        return parse_api_keys(self.api_keys.get_secret_value())
