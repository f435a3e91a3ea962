"""Notebook 04 as a person uses it: in JupyterLab, in a real browser.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token) serving a temporary
copy of notebooks/04_latent_manifold.ipynb with its outputs cleared (the committed notebook
is never opened, so never saved over), opens it in Debian's chromium driven by Python
playwright, runs it with Run > Run All Cells, moves the z1 slider with the arrow keys, and
checks that the decoded digit changed: its pixels (an element screenshot) and its PNG bytes.
The server, its kernels and the browser are always stopped.

Set VAE_UTILS_BROWSER_ARTIFACTS to a folder to keep screenshots. Needs chromium (`apt-get install chromium`) and playwright (`pip install playwright`; no
`playwright install` is needed: we launch the system chromium by path). Without them the
test is skipped with that message.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, move_z1_and_capture, notebook_in_lab, screenshot_on_failure

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_latent_manifold.ipynb"
RUN_TIMEOUT_MS = 8 * 60 * 1000  # Run All may train the 2-D model if it is not cached yet
ARTIFACTS = os.environ.get("VAE_UTILS_BROWSER_ARTIFACTS")  # a folder for screenshots, if set

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install chromium`")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Python playwright missing: `pip install playwright`")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Notebook 04 run to its end in JupyterLab, once for every test of this file."""
    with sync_api.sync_playwright() as p, notebook_in_lab(
            p, NOTEBOOK, tmp_path_factory.mktemp("lab"), RUN_TIMEOUT_MS) as page:
        yield page


def test_z1_slider_redraws_the_decoded_digit(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "latent-explorer"):
        before_value, after_value, before_pixels, after_pixels = move_z1_and_capture(
            page, ".noUi-handle", ARTIFACTS, "explorer")
        assert float(after_value) > float(before_value), (before_value, after_value)
        assert after_pixels != before_pixels, "the decoded digit looks the same after moving z1"
