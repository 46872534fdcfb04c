"""Text from the data in spreadsheet cells and file names (features/cells.py): what Excel would run as
a formula is written as text, numbers stay numbers, a file name is one harmless name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.cells import FORMULA_START, excel_value, neutralise, neutralise_frame, safe_file_name, unique_file_name


@pytest.mark.parametrize("text", ["=1+1", '=HYPERLINK("http://example.invalid","x")', "+41", "-2+3", "@SUM(A1)",
                                  "\tx", "\rx", "=cmd|' /C calc'!A0"])
def test_text_a_spreadsheet_would_compute_gets_a_quote(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["H000123", "杨舍", "", " =x", "'=x", "a=b", "1.5", None, 3, -3.5, 0.0, True,
                                   np.float64(-1.25), np.int64(-7), pd.Timestamp("2026-01-01")])
def test_everything_else_is_left_as_it_is(value):
    assert neutralise(value) is value


def test_excel_cells_never_hold_what_xml_cannot():
    assert excel_value("a\x00b\x1fc") == "a\ufffdb\ufffdc"
    assert excel_value("=a\x01") == "'=a\ufffd"
    assert excel_value("line\nnext\ttab") == "line\nnext\ttab"
    assert excel_value(-2) == -2


def test_a_frame_neutralises_its_text_and_keeps_its_numbers():
    frame = pd.DataFrame({"id": ["=1+1", "H1", None], "n": [-1, 2, 3], "p": [-0.5, 0.25, np.nan],
                          "s": pd.array(["-x", "y", None], dtype="string")}, index=["=i", "j", "k"])
    out = neutralise_frame(frame, index=True)
    assert list(out["id"][:2]) == ["'=1+1", "H1"] and pd.isna(out["id"].iloc[2])
    assert out["n"].tolist() == [-1, 2, 3] and out["n"].dtype == frame["n"].dtype
    assert out["p"].iloc[0] == -0.5 and out["p"].dtype == frame["p"].dtype
    assert out["s"].iloc[0] == "'-x" and list(out.index) == ["'=i", "j", "k"]
    assert frame["id"].iloc[0] == "=1+1"  # the caller's frame is not changed
    safe = pd.DataFrame({"a": ["x"], "b": [1]})
    assert neutralise_frame(safe) is safe
    assert list(neutralise_frame(pd.DataFrame({"=h": [1]})).columns) == ["'=h"]


@pytest.mark.parametrize(("text", "expected"), [
    ("yangshe", "yangshe"), ("杨舍", "杨舍"), ("../../etc/passwd", "____etc_passwd"), ("..", "_"), ("a..b", "a_b"),
    ("a\\b", "a_b"), ("C:x", "C_x"), ('a<>:"|?*b', "a_______b"), ("a\x00b\x1f", "a_b_"), ("\u202etxt.exe", "_txt.exe"),
    ("", "_"), ("  ", "_"), (".hidden", "hidden"), ("end. ", "end"), ("CON", "_CON"), ("nul.txt", "_nul.txt"),
    ("-rf", "_rf"), ("=1+1", "=1+1"), ("a\u2028b", "a_b"),
])
def test_file_names_from_data_are_one_harmless_name(text, expected):
    assert safe_file_name(text) == expected


def test_file_names_are_bounded_in_bytes_and_cut_between_characters():
    name = safe_file_name("张家港" * 100)
    assert len(name.encode("utf-8")) <= 120 and name == "张家港" * 13 + "张"
    assert safe_file_name("x" * 10_000) == "x" * 120


def test_names_that_clean_to_the_same_file_are_numbered():
    taken: set[str] = set()
    assert [unique_file_name(t, taken) for t in ("a/b", "a_b", "A_B", "a:b")] == ["a_b", "a_b_2", "A_B_3", "a_b_4"]


def test_the_formula_characters_are_owasps():
    assert set(FORMULA_START) == {"=", "+", "-", "@", "\t", "\r"}
