"""What the logged pyfunc needs installed, derived from the code that travels with it.

The model is logged with ``models/`` and ``features/`` as its code paths; loading it imports them.
Its ``requirements.txt`` is therefore the set of third-party distributions that this source
imports, each pinned to the version installed where the model was trained (as MLflow's own
inference pins them). Reading the imports from the source, rather than keeping a typed list, means
a new import cannot be left out: it is either required or logging fails, naming the module.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

# Packages the code needs without importing them by name: pandas imports its parquet engine only
# when a parquet file is read or written (features/io.py does both).
ENGINE_CALLS = {"read_parquet": "pyarrow", "to_parquet": "pyarrow"}


class RequirementError(RuntimeError):
    """An import of the packaged code that no installed distribution provides."""


def _sources(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Each Python file under ``paths`` with its name as it travels with the model (``models/lgbm.py``)."""
    files: list[tuple[Path, str]] = []
    for p in paths:
        found = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        files.extend((f, f.relative_to(p.parent).as_posix()) for f in found)
    return files


def third_party_imports(code_paths: Sequence[str | Path]) -> dict[str, list[str]]:
    """Top-level modules imported anywhere in ``code_paths`` (at module level or inside a function)
    that are neither the standard library nor the code paths themselves: {module: [files]}.

    Engines that a call implies (``ENGINE_CALLS``) count as imports of the file that makes the call.
    """
    paths = [Path(p) for p in code_paths]
    local = {p.stem for p in paths}  # "models", "features": packages shipped as code, not installed
    found: dict[str, set[str]] = {}
    for file, label in _sources(paths):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Attribute) and node.attr in ENGINE_CALLS:
                names = [ENGINE_CALLS[node.attr]]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "__future__" and top not in local and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(label)
    return {m: sorted(files) for m, files in sorted(found.items())}


def distribution_of(module: str) -> str:
    """The installed distribution that provides the top-level ``module`` (``sklearn`` →
    ``scikit-learn``). Where several do (``mlflow``, ``mlflow-skinny``, ``mlflow-tracing`` all ship
    ``mlflow``), the one named like the module: the full package, which is what MLflow itself pins."""
    dists = sorted(set(metadata.packages_distributions().get(module, [])))
    if not dists:
        raise RequirementError(f"{module!r} is imported by the model's code but no installed distribution provides it;"
                               " install it, or keep the import out of the code that is logged with the model")
    if len(dists) == 1:
        return dists[0]
    same = [d for d in dists if _canonical(d) == _canonical(module)]
    if len(same) != 1:
        raise RequirementError(f"{module!r} is provided by several distributions {dists}; cannot tell which to pin")
    return same[0]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(distribution: str) -> str:
    """``name==installed version``, without a local label (``2.1.0+cpu`` → ``2.1.0``): such builds
    are not on the package index, and MLflow strips the label too."""
    return f"{distribution}=={metadata.version(distribution).split('+')[0]}"


def pip_requirements(code_paths: Sequence[str | Path]) -> list[str]:
    """The pinned requirements of a pyfunc whose code is ``code_paths``, sorted by name."""
    dists: set[str] = set()
    for module, files in third_party_imports(code_paths).items():
        try:
            dists.add(distribution_of(module))
        except RequirementError as e:
            raise RequirementError(f"{e} (imported in {', '.join(files)})") from None
    return [pinned(d) for d in sorted(dists, key=_canonical)]
