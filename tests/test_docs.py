"""The project documents its own contract: README.md and docs/*.md point at nothing outside the
repository (no ``../shared``) and at no file that is missing, the OpenAPI description names the
documents that exist, and docs/api.md lists exactly the routes the app serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
OUTSIDE = ("http://", "https://", "mailto:")
ROUTE = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^` ]*)` \|", re.MULTILINE)


@pytest.fixture(scope="module")
def openapi() -> dict:
    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(api_keys="platform:xxxxxxxxxxxxxxxx,auditor:yyyyyyyyyyyyyyyy,admin:zzzzzzzzzzzzzzzz"))
    return app.openapi()  # the schema needs no lifespan: no models, no store


def links(path: Path) -> list[str]:
    """The targets of the markdown links of ``path`` that point inside the repository."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)  # not in code blocks
    return [t for t in LINK.findall(text) if not t.startswith(OUTSIDE) and not t.startswith("#")]


def test_the_documents_exist():
    assert {"contract.md", "api.md", "policy.md", "audit-integrity.md"} <= {p.name for p in DOCS}
    assert (ROOT / "checks" / "contract_check.py").exists()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_document_points_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file_that_exists(path):
    found = links(path)
    missing = [t for t in found if not (path.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"{path.name}: {missing}"


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of the headings of ``path``: lower case, punctuation dropped, spaces
    as hyphens (``## 2. Point in time (as of T)`` → ``2-point-in-time-as-of-t``)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_anchor_into_a_document_names_one_of_its_headings(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    targets = [t for t in LINK.findall(text) if "#" in t and not t.startswith(OUTSIDE)]
    wrong = []
    for t in targets:
        file, anchor = t.split("#", 1)
        target = path if not file else path.parent / file
        if target.suffix == ".md" and target.exists() and anchor not in anchors(target):
            wrong.append(t)
    assert not wrong, f"{path.name}: {wrong}"


def test_the_link_finder_finds_links_and_missing_files(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [the api](api.md#errors), [a\nsplit text](sub/x.md \"title\"), ![img](<pic.png>),\n"
                    "[the web](https://example.org/a.md) and [here](#top).\n```\n[code](nothing.md)\n```\n",
                    encoding="utf-8")
    assert links(page) == ["api.md#errors", "sub/x.md", "pic.png"]
    assert "2-point-in-time-as-of-t" in anchors(ROOT / "docs" / "contract.md")
    for path in DOCS:
        if path.name in ("README.md", "api.md", "contract.md", "policy.md"):
            assert links(path), f"{path.name} has no relative link: is the finder broken?"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_json_examples_are_json(path):
    blocks = re.findall(r"```json\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    for block in blocks:
        json.loads(block)


def test_the_bundle_examples_of_api_md_are_valid_bundles(policy):
    from domain.bundle import parse_bundle

    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "api.md").read_text(
        encoding="utf-8"), flags=re.DOTALL)]
    bundles = [b for b in blocks if "members" in b] + [i for b in blocks for i in b.get("items", [])]
    assert len(bundles) >= 3
    for b in bundles:
        assert parse_bundle(b, policy)[1] == [], b["household"]["household_id"]


def test_the_openapi_description_names_the_project_documents(openapi):
    description = openapi["info"]["description"]
    assert "../shared" not in json.dumps(openapi)
    assert "docs/contract.md" in description and "docs/api.md" in description
    for name in re.findall(r"\b(?:docs|checks)/[\w.-]+\.(?:md|py)\b", description):
        assert (ROOT / name).exists(), name


def test_api_md_lists_every_route_of_the_app_and_no_other(openapi):
    served = {f"{method.upper()} {path}" for path, ops in openapi["paths"].items() for method in ops}
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    listed = {f"{m} {p}" for m, p in ROUTE.findall(text)}
    assert served - listed == set(), "routes of the app missing from docs/api.md's table"
    assert listed - served == set(), "routes in docs/api.md's table that the app does not serve"
    for route in served:  # and each has a section of its own
        assert f"## `{route}`" in text, route
