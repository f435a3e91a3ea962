"""Notebook 04 as a person uses it: in JupyterLab, in a real browser.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token) serving a temporary
copy of notebooks/04_latent_manifold.ipynb with its outputs cleared (the committed notebook
is never opened, so never saved over), opens it in Debian's chromium driven by Python
playwright, runs it with Run > Run All Cells (once, for every test of this file), and moves
each control as a person does:

    z1 slider       arrow keys; the decoded digit changes (its pixels and its PNG bytes)
    drawing pad     mouse strokes on the canvas; the explorer's panel and readout change
    rows hidden     arrow keys on the occlusion slider; the panel and readout follow it
    test digit      a choice in the dropdown; the panel and readout follow it

The server, its kernels and the browser are always stopped.

Set VAE_UTILS_BROWSER_ARTIFACTS to a folder to keep screenshots. Needs chromium (`apt-get install chromium`) and playwright (`pip install playwright`; no
`playwright install` is needed: we launch the system chromium by path). Without them the
test is skipped with that message.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from browser_helpers import (CHROMIUM, move_z1_and_capture, notebook_in_lab, press_on_slider,
                             screenshot_on_failure, src_of, text_of, wait_for_new_src)

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


# -- draw a digit --------------------------------------------------------------------------------

PANEL, READOUT = "img.vae-draw-panel", ".vae-draw-readout"


def _bound_terms(readout: str) -> tuple[float, float, float]:
    """(rec, KL, bound) in nats, as the explorer's readout prints them."""
    rec, kl, bound = (float(v.replace("\u2212", "-")) for v in re.findall(
        r"= ([\u2212-]?\d+\.\d+) nats", readout))
    return rec, kl, bound


def _wait_for_new_text(page, selector: str, before: str) -> str:
    el = page.locator(selector).first
    page.wait_for_function("([el, text]) => el.innerText !== text", arg=[el.element_handle(), before])
    return el.inner_text()


def _stroke(page, canvas, points, steps: int = 6) -> None:
    """Press the mouse at the first point (fractions of the canvas), move through the others, release."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def test_drawing_on_the_pad_redraws_the_explorer(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "draw-a-digit-pad"):
        canvas = page.locator("canvas.vae-pad").first
        canvas.scroll_into_view_if_needed()
        canvas.wait_for(state="visible")
        before_src, before_text = src_of(page, PANEL), text_of(page, READOUT)
        assert "test digit #3" in before_text, before_text
        _stroke(page, canvas, [(0.3, 0.25), (0.7, 0.25), (0.55, 0.5), (0.45, 0.8)])  # a 7
        wait_for_new_src(page, PANEL, before_src)
        page.wait_for_function("(el) => el.innerText.includes('your drawing')",
                               arg=page.locator(READOUT).first.element_handle())
        after_text = text_of(page, READOUT)
        ink = page.evaluate("""(c) => {
            const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;   // the pad's 28 x 28 pixels
            let s = 0;
            for (let i = 0; i < d.length; i += 4) s += d[i];
            return s / 255;
        }""", canvas.element_handle())
        assert ink > 10, f"the canvas holds {ink:.1f} pixels of ink after a stroke"
        if ARTIFACTS:
            Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
            canvas.scroll_into_view_if_needed()
            page.screenshot(path=str(Path(ARTIFACTS) / "draw-a-digit-pad.png"))
        rec, kl, bound = _bound_terms(after_text)
        assert _bound_terms(before_text) != (rec, kl, bound), "the bound split did not change"
        assert bound == pytest.approx(rec - kl, abs=0.015), after_text
        assert kl > 0, after_text

        before_src = src_of(page, PANEL)
        _stroke(page, canvas, [(0.35, 0.55), (0.65, 0.55)])           # a crossbar: the 7 changes
        wait_for_new_src(page, PANEL, before_src)

        page.locator(".vae-pad-clear").first.click()                   # Clear: back to the test digit
        page.wait_for_function("(el) => el.innerText.includes('test digit #3')",
                               arg=page.locator(READOUT).first.element_handle())


def test_occlusion_slider_and_digit_dropdown_redraw_the_explorer(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "draw-a-digit-controls"):
        before_src, before_text = src_of(page, PANEL), text_of(page, READOUT)
        readout = press_on_slider(page, ".vae-draw-rows", "ArrowRight", 14)
        wait_for_new_src(page, PANEL, before_src)
        page.wait_for_function("(el) => el.innerText.includes('14 of 28 rows hidden')",
                               arg=page.locator(READOUT).first.element_handle())
        assert readout.strip() == "14", readout
        text = text_of(page, READOUT)
        rec, kl, bound = _bound_terms(text)
        assert (rec, kl, bound) != _bound_terms(before_text)
        assert bound == pytest.approx(rec - kl, abs=0.015), text

        before_src, before_text = src_of(page, PANEL), text
        page.locator(".vae-draw-digit select").first.select_option(label="#7 (a 9)")
        wait_for_new_src(page, PANEL, before_src)
        text = _wait_for_new_text(page, READOUT, before_text)
        page.wait_for_function("(el) => el.innerText.includes('test digit #7 (a 9), 14 of 28 rows hidden')",
                               arg=page.locator(READOUT).first.element_handle())
        assert _bound_terms(text_of(page, READOUT)) != _bound_terms(before_text)
