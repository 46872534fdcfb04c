"""Chinese labels in the run's plots are drawn with an installed CJK font, found even when matplotlib's
font cache predates it (features/cjk_font.py); without one, the log says so once and nothing changes."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from features import cjk_font  # noqa: E402
from features.cjk_font import cjk_font_family, use_cjk_font  # noqa: E402

LABEL = "各组召回率（95% 区间）；灰色：正例少于 5，不计入差距"


def installed_cjk_fonts() -> list[str]:
    """CJK font files as fontconfig lists them, independently of the code under test."""
    if shutil.which("fc-list") is None:
        return []
    out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False).stdout
    return [line.strip().rstrip(":") for line in out.splitlines() if line.strip()]


needs_cjk_font = pytest.mark.skipif(not installed_cjk_fonts(), reason="no CJK font installed on this machine "
                                    "(fc-list :lang=zh is empty; apt-get install fonts-wqy-zenhei, or make fonts)")


@pytest.fixture
def fresh(monkeypatch):
    """The lookup forgotten before and after, matplotlib's rcParams and font list restored after."""
    cjk_font_family.cache_clear()
    monkeypatch.setattr(font_manager.fontManager, "ttflist", list(font_manager.fontManager.ttflist))
    with matplotlib.rc_context():
        yield
    cjk_font_family.cache_clear()


def render(label: str) -> list[warnings.WarningMessage]:
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.set_title(label)
    ax.plot([-1, 1], [-1, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    return [w for w in caught if "missing from font" in str(w.message)]


@needs_cjk_font
def test_a_chinese_label_renders_without_missing_glyphs(fresh, caplog):
    family = use_cjk_font()
    assert family is not None
    assert matplotlib.rcParams["font.sans-serif"][0] == family
    assert matplotlib.rcParams["axes.unicode_minus"] is False
    with caplog.at_level(logging.WARNING):
        assert render(LABEL) == []
    assert [r.getMessage() for r in caplog.records] == []  # nor matplotlib's "failed to find font weight"


@needs_cjk_font
def test_without_the_helper_the_same_label_misses_glyphs(fresh):
    """The check above can fail: with DejaVu Sans alone, matplotlib warns of the missing glyphs."""
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]
    with pytest.warns(UserWarning, match="missing from font"):
        fig, ax = plt.subplots()
        ax.set_title(LABEL)
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


@needs_cjk_font
def test_a_font_missing_from_matplotlibs_cache_is_found_on_disk(fresh):
    """As after `apt-get install fonts-wqy-zenhei` once matplotlib had built its cache."""
    fm = font_manager.fontManager
    fm.ttflist = [f for f in fm.ttflist if f.name not in cjk_font.CJK_FAMILIES and not cjk_font._is_cjk_file(f.fname)]
    assert cjk_font._known_family() is None
    family = use_cjk_font()
    assert family is not None and family in {f.name for f in fm.ttflist}
    assert render(LABEL) == []


def test_without_a_cjk_font_it_says_so_once_and_changes_nothing(fresh, monkeypatch, caplog):
    monkeypatch.setattr(cjk_font, "_known_family", lambda: None)
    monkeypatch.setattr(cjk_font, "_font_files", lambda: [])
    before = (list(matplotlib.rcParams["font.sans-serif"]), matplotlib.rcParams["axes.unicode_minus"])
    with caplog.at_level(logging.WARNING, logger="features.cjk_font"):
        assert use_cjk_font() is None
        assert use_cjk_font() is None
    assert [r.getMessage() for r in caplog.records if "no CJK font" in r.getMessage()] == [
        "no CJK font installed (e.g. apt-get install fonts-wqy-zenhei, or `make fonts`): Chinese labels in plots "
        "show as boxes"]
    assert (list(matplotlib.rcParams["font.sans-serif"]), matplotlib.rcParams["axes.unicode_minus"]) == before
