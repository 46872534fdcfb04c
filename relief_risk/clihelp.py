"""What the command line says about itself, in one place: the help formatter (descriptions kept as
written, each option's default appended), the risks named for ``--risk``, and the environment
variables each subcommand reads, those of the service read from ``serving/settings.py`` so that
``serve --help`` cannot drift from what the service reads."""

from __future__ import annotations

import argparse
import textwrap
import typing
from typing import Any

from features.risks import RISK_LABELS, RISKS


class Formatter(argparse.HelpFormatter):
    """Descriptions and epilogs: lines that start at the margin are filled as paragraphs, indented
    lines (examples, environment variables) keep their indentation, wrapped only past the width.
    Each option's help ends with its default, "(default: off)" for a flag, "(required)" for a
    required option, unless the help already says its default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent, subsequent_indent=indent))
                paragraph.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                out.append("")
            elif line[0].isspace():
                flush()
                margin = indent + line[:len(line) - len(line.lstrip())]
                more = margin + "  " if len(margin) < 6 else margin
                out.extend(textwrap.wrap(line.strip(), width, initial_indent=margin, subsequent_indent=more,
                                         break_long_words=False, break_on_hyphens=False))
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0 and action.default is False:
            return f"{text} (default: off)"
        if action.default is None:
            return text
        return f"{text} (default: %(default)s)"


def risks_help(with_all: bool = False) -> str:
    """The risks ``--risk`` takes, with their Chinese names (``%`` escaped for argparse)."""
    names = ", ".join(f"{r} ({RISK_LABELS[r]})" for r in RISKS)
    if with_all:
        return f"a risk, several separated by commas, or 'all' (the five); the risks: {names}"
    return f"the risk, one of: {names}"


def environment(*entries: tuple[str, str]) -> str:
    """An epilog naming the environment variables a subcommand reads, each with what it is for."""
    if not entries:
        return "environment variables read: none"
    return "\n".join(["environment variables read:", *(f"  {name}\n      {text}" for name, text in entries)])


MLFLOW_TRACKING_URI = ("MLFLOW_TRACKING_URI", "the MLflow tracking store and model registry (default: MLflow's, "
                       "sqlite:///mlflow.db in the working folder)")
MLFLOW_RUN_ID = ("MLFLOW_RUN_ID", "set by `mlflow run` (MLproject's train entry point): the run to log into, in "
                 "its experiment")
PORT = ("PORT", "the port when --port is not given (default: 8000)")


def _with_default(text: str, field: Any) -> str:
    """``text`` and, unless it says it already, the field's default."""
    if field.is_required():
        return f"{text} (required)"
    if "default" in text.lower():
        return text
    default = field.get_default(call_default_factory=True)
    if default is None:
        return f"{text} (default: unset)"
    if isinstance(default, bool):
        default = str(default).lower()
    return f"{text} (default: {default})"


def service_settings() -> list[tuple[str, str]]:
    """Every field of the service's :class:`serving.settings.Settings` as (environment variable, what it
    is), in the class's order: the prefix and field name, its description and its default."""
    from serving.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    entries = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        env = (alias or f"{prefix}{name}").upper()
        text = field.description or ""
        if typing.get_origin(field.annotation) is list:
            text += "; a JSON list, e.g. [\"illness_poverty\"]"
        entries.append((env, _with_default(text, field)))
    return entries


def setting(name: str) -> tuple[str, str]:
    """One of :func:`service_settings`, by its field name (e.g. ``audit_url``)."""
    from serving.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    wanted = f"{prefix}{name}".upper()
    return next(e for e in service_settings() if e[0] == wanted)
