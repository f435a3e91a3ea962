"""Notebook 05's K explorer as a person uses it: in JupyterLab, in a real browser.

The module's `page` runs a clean copy of notebooks/05_marginal_likelihood.ipynb once, with Run >
Run All Cells (browser_helpers.notebook_page; with 05's models in the cache, as after nbval
of 05, about 4 minutes on 2 cores; without, it trains them first). The test then moves the K
slider with the keyboard and picks another digit in the dropdown, and checks that the
histogram and the path images changed and that the readout shows, for that digit and K, the
numbers the notebook's table prints (`KExplorer.table`: the pure functions `summary` and
`format_row` on the same weights). On failure a screenshot is saved under pytest's tmp_path.

Needs chromium (`apt-get install chromium`) and playwright (`pip install playwright`; no
`playwright install`: the system chromium is launched by path). Without them: skipped.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from browser_helpers import (NEEDS_CHROMIUM, WIDGET_TIMEOUT_MS, notebook_page, press_on_slider, screenshot_on_failure,
                             src_of, text_of, wait_for_new_src)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "05_marginal_likelihood.ipynb"
RUN_TIMEOUT_MS = 30 * 60 * 1000  # Run All may train 05's models first (about 6 min on 2 idle cores)
READOUT = ("K", "ess", "ess-fraction", "half", "log-p", "mean")  # the readout's numbers, by CSS class

pytestmark = NEEDS_CHROMIUM
page = notebook_page(NOTEBOOK, RUN_TIMEOUT_MS)  # the notebook, run once in JupyterLab for every test here


def printed_table(page) -> dict:
    """{(digit name, K): {readout class: number as printed}} from the output of the cell that
    prints `k_explorer.table()` (header: digit, K, ESS, ESS/K, half, log p^_K, mean log w)."""
    out = page.locator(".jp-OutputArea-output", has_text="mean log w").first
    rows = {}
    for line in out.text_content().splitlines():
        tokens = line.split()
        if len(tokens) >= 7 and tokens[-6].isdigit():                 # a row: name... K ESS ESS/K half log-p mean
            name, numbers = " ".join(tokens[:-6]), tokens[-6:]
            rows[name, int(numbers[0])] = dict(zip(READOUT, numbers))
    return rows


def readout(page) -> dict:
    """{readout class: the number it shows}."""
    return {name: text_of(page, f".vae-k-readout .vae-k-{name}").strip() for name in READOUT}


def assert_shows(page, table, digit: str, k: int) -> None:
    """The readout shows digit's row of the printed table at K = k: the same numbers, parsed."""
    page.wait_for_function("(k) => document.querySelector('.vae-k-readout .vae-k-K').textContent.trim() === k",
                           arg=str(k), timeout=WIDGET_TIMEOUT_MS)
    shown, expected = readout(page), table[digit, k]
    assert int(shown["K"]) == k and int(shown["half"]) == int(expected["half"]), (shown, expected)
    for name in ("ess", "log-p", "mean"):
        assert float(shown[name]) == pytest.approx(float(expected[name]), abs=1e-9), (name, shown, expected)
    assert float(shown["ess-fraction"].rstrip("%")) == pytest.approx(float(expected["ess-fraction"].rstrip("%")))


def test_k_slider_and_digit_dropdown_redraw_with_the_tables_numbers(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "k-explorer"):
        page.locator(".vae-k").first.scroll_into_view_if_needed()   # a failure's screenshot shows the explorer
        table = printed_table(page)
        # the dropdown's names, as the table prints them (ipywidgets shows spaces as no-break spaces)
        digits = [t.replace("\xa0", " ") for t in page.locator(".vae-k-digit select option").all_text_contents()]
        assert len(digits) == 5 and all((d, k) in table for d in digits for k in (1, 10, 5000)), (digits, list(table))
        hist, path = src_of(page, "img.vae-k-histogram"), src_of(page, "img.vae-k-path")
        assert_shows(page, table, digits[0], 1)                       # the explorer opens at K = 1

        assert press_on_slider(page, ".vae-k", "ArrowRight", 3).strip() == "10"   # 1 -> 2 -> 5 -> 10
        hist = wait_for_new_src(page, "img.vae-k-histogram", hist)
        path = wait_for_new_src(page, "img.vae-k-path", path)
        assert_shows(page, table, digits[0], 10)

        page.locator(".vae-k-digit select").select_option(index=1)
        hist = wait_for_new_src(page, "img.vae-k-histogram", hist)
        wait_for_new_src(page, "img.vae-k-path", path)
        assert_shows(page, table, digits[1], 10)
        assert table[digits[1], 10] != table[digits[0], 10]           # the digit's own numbers, not the last

        assert press_on_slider(page, ".vae-k", "End", 1).strip() == "5000"
        wait_for_new_src(page, "img.vae-k-histogram", hist)
        assert_shows(page, table, digits[1], 5000)
