"""How the policy calculator writes a step that tests a condition: the relation that actually holds
between the household's figure and the line, then the verdict, so that a failed step never reads as
a true statement (``1,500.00 元 ≥ 1,100.00 元：不满足``, not ``1,500.00 元 < 1,100.00 元``)."""

from __future__ import annotations

import operator

OPS = {"<": operator.lt, "≤": operator.le, ">": operator.gt, "≥": operator.ge}
NEGATED = {"<": "≥", "≤": ">", ">": "≤", "≥": "<"}
VERDICT = {True: "满足", False: "不满足"}


def yuan(x: float) -> str:
    return f"{x:,.2f} 元"


def pair(a: float, b: float, unit: str) -> tuple[str, str]:
    """``a`` and ``b`` in ``unit`` (元, %, or a count's unit such as 套), with as many decimals as it
    takes for two different numbers not to read alike (1,099.996 元 beside a line of 1,100 元 is not
    shown as 1,100.00 元)."""
    if unit not in ("元", "%"):
        return f"{a:g} {unit}", f"{b:g} {unit}"
    for d in (2, 3, 4, 6) if unit == "元" else (1, 2, 3, 4):
        sa, sb = (f"{a:,.{d}f} 元", f"{b:,.{d}f} 元") if unit == "元" else (f"{a:.{d}%}", f"{b:.{d}%}")
        if sa != sb or a == b:
            break
    return sa, sb


def comparison(left: float, op: str, right: float, unit: str = "元", left_text: str = "",
               right_text: str = "") -> tuple[bool, str]:
    """Whether ``left op right`` holds, and the step's text: ``op`` when it holds, its negation when
    not, then 满足 / 不满足. ``left_text`` / ``right_text`` show how a side was reached
    (``1.5 × 1,100.00 元 = ``)."""
    passed = bool(OPS[op](left, right))
    a, b = pair(left, right, unit)
    return passed, f"{left_text}{a} {op if passed else NEGATED[op]} {right_text}{b}：{VERDICT[passed]}"
