"""A model card written in Markdown, turned into blocks the template renders (and escapes).

Only the Markdown a model card needs: headings, paragraphs, bullet and numbered lists, pipe tables,
fenced code, and **bold** / `code` inside a line. No raw HTML passes: every piece of text reaches
the page through Jinja2's autoescape, so a card cannot inject markup into the auditor's page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_INLINE = re.compile(r"(\*\*[^*]+\*\*|`[^`]+`)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass
class Block:
    kind: str  # h4..h6 (the card sits under the page's own headings) | p | ul | ol | table | code
    spans: list[tuple[str, str]] = field(default_factory=list)     # (text|strong|code, text)
    items: list[list[tuple[str, str]]] = field(default_factory=list)
    header: list[list[tuple[str, str]]] = field(default_factory=list)
    rows: list[list[list[tuple[str, str]]]] = field(default_factory=list)
    text: str = ""


def spans(line: str) -> list[tuple[str, str]]:
    out = []
    for part in _INLINE.split(line):
        if not part:
            continue
        if part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(("strong", part[2:-2]))
        elif part.startswith("`") and part.endswith("`") and len(part) > 2:
            out.append(("code", part[1:-1]))
        else:
            out.append(("text", part))
    return out


def _cells(line: str) -> list[list[tuple[str, str]]]:
    return [spans(c.strip()) for c in line.strip().strip("|").split("|")]


def parse(text: str) -> list[Block]:
    blocks: list[Block] = []
    para: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")

    def flush() -> None:
        if para:
            blocks.append(Block("p", spans=spans(" ".join(s.strip() for s in para))))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append(Block("code", text="\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        if m := re.match(r"^(#{1,6})\s+(.*)$", s):
            flush()
            blocks.append(Block(f"h{min(len(m.group(1)) + 3, 6)}", spans=spans(m.group(2).strip("# "))))
        elif s.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            flush()
            table = Block("table", header=_cells(s))
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                table.rows.append(_cells(lines[i]))
                i += 1
            blocks.append(table)
            continue
        elif re.match(r"^[-*+]\s+", s) or re.match(r"^\d+[.)]\s+", s):
            flush()
            kind = "ul" if re.match(r"^[-*+]\s+", s) else "ol"
            if not blocks or blocks[-1].kind != kind or (i > 0 and not lines[i - 1].strip()):
                blocks.append(Block(kind))
            blocks[-1].items.append(spans(re.sub(r"^([-*+]|\d+[.)])\s+", "", s)))
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return blocks
