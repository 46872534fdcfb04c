"""Chinese text in matplotlib figures: an installed CJK font first in ``font.sans-serif``.

Naming fonts in ``font.sans-serif`` is not enough: matplotlib only knows the fonts in its cache,
which is built once and misses a font installed later (``apt-get install fonts-wqy-zenhei`` after
the first plot), and then falls back to DejaVu Sans with "Glyph … missing" warnings and boxes. So
this looks for a CJK font among the fonts matplotlib knows, by family or file name, then among the
font files on the system (fontconfig's and the common folders), adds the one it finds, and puts it
first. It lives in ``features`` because that is the lowest layer that both training (the run's
plots) and serving may import (serving's charts are drawn by the browser today, with its own fonts);
matplotlib is imported only when a figure is about to be drawn.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# In order of preference: simplified Chinese first.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "Sarasa Gothic SC", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC",
    "Hiragino Sans GB", "Droid Sans Fallback", "Noto Sans CJK JP", "Noto Sans CJK TC", "AR PL UMing CN",
)
# Font file names (lower case, without separators) that hold CJK glyphs.
CJK_FILES = ("notosanscjk", "notoserifcjk", "notosanssc", "sourcehansans", "wqy",
             "sarasa", "msyh", "simhei", "simsun", "pingfang", "hiragino", "droidsansfallback", "uming", "ukai")
FONT_DIRS = (
    "/usr/share/fonts/truetype/wqy", "/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/noto-cjk", "/usr/share/fonts/google-noto-cjk", "/usr/share/fonts/wqy-zenhei",
    "/usr/share/fonts/wqy-microhei", "/usr/share/fonts/truetype/droid", "/usr/share/fonts/truetype/arphic",
    "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts", "/System/Library/Fonts", "/Library/Fonts",
    "C:/Windows/Fonts",
)
_SUFFIXES = (".ttf", ".ttc", ".otf")


def _is_cjk_file(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(_SUFFIXES) and any(h in name.replace("-", "").replace("_", "") for h in CJK_FILES)


def _known_family() -> str | None:
    """The preferred CJK family among the fonts matplotlib knows, by family, else by file name."""
    from matplotlib import font_manager

    fonts = font_manager.fontManager.ttflist
    names = {f.name for f in fonts}
    for family in CJK_FAMILIES:
        if family in names:
            return family
    return next((f.name for f in fonts if _is_cjk_file(f.fname)), None)


def _font_files() -> list[str]:
    """CJK font files on this system: fontconfig's list (what matplotlib's cache is built from) and
    the common folders, which also holds fonts installed after the cache was built."""
    from matplotlib import font_manager

    files = set(font_manager.findSystemFonts())
    for folder in map(Path, FONT_DIRS):
        folder = folder.expanduser()
        if folder.is_dir():
            files.update(str(p) for p in folder.rglob("*") if p.is_file())
    return sorted(f for f in files if _is_cjk_file(f))


class _OneWeight(logging.Filter):
    """Drops matplotlib's "findfont: Failed to find font weight normal for <family>, now using 500": CJK
    fonts often come in one weight (WenQuanYi Zen Hei: medium), which serves every weight, and the
    warning would come once per figure."""

    def __init__(self, family: str) -> None:
        super().__init__()
        self.family = family

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("findfont: Failed to find font weight") and f" for {self.family}," in message)


@functools.cache
def cjk_font_family() -> str | None:
    """The installed CJK font family matplotlib will draw with (registering its file if matplotlib did
    not know it), or None, said once in the log."""
    from matplotlib import font_manager

    family = _known_family()
    if family is None:
        for path in _font_files():
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError) as exc:
                log.debug("cannot read the font file %s: %s", path, exc)
        family = _known_family()
    if family is None:
        log.warning("no CJK font installed (e.g. apt-get install fonts-wqy-zenhei, or `make fonts`): Chinese "
                    "labels in plots show as boxes")
    else:
        logging.getLogger("matplotlib.font_manager").addFilter(_OneWeight(family))
        log.debug("Chinese labels in plots use %s", family)
    return family


def use_cjk_font() -> str | None:
    """Puts the installed CJK font first in ``font.sans-serif``, with ``axes.unicode_minus`` off (the
    font has no Unicode minus); changes nothing when none is installed. Returns the family or None.
    Cheap after the first call: call it before drawing a figure with Chinese text."""
    family = cjk_font_family()
    if family is not None:
        import matplotlib

        rest = [f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
        matplotlib.rcParams["font.sans-serif"] = [family, *rest]
        matplotlib.rcParams["axes.unicode_minus"] = False
    return family
