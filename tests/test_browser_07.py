"""Notebook 07's beta explorer as a person uses it: in JupyterLab, in a real browser.

A clean copy of notebooks/07_autoencoders.ipynb runs once in JupyterLab (Run > Run All Cells,
in Debian's chromium driven by playwright; browser_helpers.notebook_page). Then the beta
slider moves one step right with the arrow key, and the test checks that the map, the
samples and the (R, D) plot changed, and that the readout now shows the next beta with the
rate, distortion, bound and active units the notebook printed for it in its table.

Needs chromium and playwright (skipped without them) and notebook 07's models in the model
cache (VAE_UTILS_CHECKPOINTS; without them Run All trains them, about 5 minutes more).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_helpers import NEEDS_CHROMIUM, notebook_page, press_on_slider, screenshot_on_failure, src_of, wait_for_new_src

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "07_autoencoders.ipynb"
RUN_TIMEOUT_MS = 20 * 60 * 1000  # about 3 min with every model cached; 7 min more if it trains them

pytestmark = NEEDS_CHROMIUM
page = notebook_page(NOTEBOOK, RUN_TIMEOUT_MS)  # the notebook, run once in JupyterLab for every test here


def printed_rd_table(page) -> dict:
    """{beta: (R, D, bound, active units)} as notebook 07 printed them in section 3's table."""
    # textContent, not innerText: the output may be off screen, where JupyterLab skips rendering it
    out = page.locator(".jp-OutputArea-output", has_text="bound -(R + D)").first.text_content()
    rows = re.findall(r"^\s*(\d+\.\d)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s*$", out, re.M)
    return {float(b): (float(r), float(d), float(bound), int(u)) for b, r, d, bound, u in rows}


def readout_numbers(page) -> dict:
    """The readout's numbers, from the spans of class vae-beta-<name>."""
    names = ("beta", "rate", "distortion", "bound", "units")
    return {n: float(page.locator(f".vae-beta-readout .vae-beta-{n}").first.text_content()) for n in names}


def test_beta_slider_swaps_the_panels_and_the_readout(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "beta-explorer"):
        table = printed_rd_table(page)
        assert sorted(table) == [0.0, 0.1, 0.5, 1.0, 2.0, 4.0], table
        images = ("img.vae-beta-map", "img.vae-beta-samples", "img.vae-beta-rd")
        before = {sel: src_of(page, sel) for sel in images}
        shown = readout_numbers(page)
        assert shown["beta"] == 1.0 and shown["rate"] == table[1.0][0], (shown, table[1.0])

        label = press_on_slider(page, ".vae-beta", "ArrowRight", 1)  # one step: beta 1 -> 2
        for sel in images:
            wait_for_new_src(page, sel, before[sel])
        page.wait_for_function("() => document.querySelector('.vae-beta-readout .vae-beta-beta')"
                               "?.textContent.trim() === '2'")
        assert label.strip() == "2", label
        shown = readout_numbers(page)
        rate, distortion, bound, units = table[2.0]
        assert (shown["rate"], shown["distortion"], shown["bound"], shown["units"]) == (rate, distortion, bound, units)
        assert shown["rate"] != table[1.0][0]
        assert shown["bound"] == pytest.approx(-(shown["rate"] + shown["distortion"]), abs=0.11)  # rounding
