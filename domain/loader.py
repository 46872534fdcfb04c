"""The one model loader: the API, the nightly batch, ``reproduce`` and the command line all load the
registered models here.

An alias is resolved to a version once (``get_model_version_by_alias``) and that exact version is
loaded (``models:/<name>/<version>``), never the alias a second time: if the alias moves between the
two calls, the model that scores is still the version written in every audit record and batch file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from features.risks import RISKS
from models.pyfunc import load_risk_model
from models.risk_model import RiskModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version, loaded: ``name`` is the registered name (the risk)."""

    name: str
    version: str
    aliases: tuple[str, ...]
    model: RiskModel
    uri: str
    run_id: str | None = None

    @property
    def risk(self) -> str:
        return self.model.risk


class NoModels(LookupError):
    """No configured risk has a model under the alias."""


def load_version(name: str, version: str, client: MlflowClient | None = None, warm: bool = True) -> LoadedModel:
    """Version ``version`` of the registered model ``name``, its exact explainer built and warmed
    (``warm``) so that the first request does not pay for it."""
    client = client or MlflowClient()
    mv = client.get_model_version(name, str(version))
    uri = f"models:/{name}/{mv.version}"
    model, facts = load_risk_model(uri)
    if model.risk != name:
        raise ValueError(f"{uri} holds a model of {model.risk!r}, not of {name!r}")
    if warm:
        model.explainer()
    return LoadedModel(name=name, version=str(mv.version), aliases=tuple(sorted(mv.aliases)), model=model, uri=uri,
                       run_id=facts.get("run_id"))


def load_served(risks: Sequence[str] | None = None, alias: str = "champion", *, required: bool = False,
                warm: bool = True) -> tuple[list[LoadedModel], list[str]]:
    """Each risk's model under ``alias`` (``risks`` None: every risk of the contract), and the risks
    that have none. ``required``: a risk without a model is an error (the risks were named
    explicitly); otherwise it is logged and reported as missing. At least one must load."""
    client = MlflowClient()
    loaded, missing = [], []
    for risk in risks or RISKS:
        try:
            mv = client.get_model_version_by_alias(risk, alias)
        except Exception:  # MLflow raises its own error types for "no such model" and "no such alias"
            if required:
                raise
            log.warning("no %s@%s registered: not served", risk, alias)
            missing.append(risk)
            continue
        loaded.append(load_version(risk, str(mv.version), client, warm=warm))
    if not loaded:
        raise NoModels(f"no model registered under @{alias} for any of {', '.join(risks or RISKS)}")
    return loaded, missing
