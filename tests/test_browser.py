"""Notebook 04 as a person uses it: in JupyterLab, in a real browser.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token) serving a temporary
copy of notebooks/04_latent_manifold.ipynb with its outputs cleared (the committed notebook
is never opened, so never saved over), opens it in Debian's chromium driven by Python
playwright, runs it with Run > Run All Cells (once, for every test of this file), and moves
each control as a person does:

    z1 slider       arrow keys; the decoded digit changes (its pixels and its PNG bytes)
    drawing pad     slow mouse strokes on the canvas; the pixels under the stroke keep their
                    ink, the panel changes and the readout shows the drawing's bound split
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

import numpy as np
import pytest

from vae_utils.explore_digit import bound_split, fixed_eps

from browser_helpers import (NEEDS_CHROMIUM, move_z1_and_capture, notebook_page, press_on_slider,
                             screenshot_on_failure, src_of, text_of, wait_for_new_src)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_latent_manifold.ipynb"
RUN_TIMEOUT_MS = 8 * 60 * 1000  # Run All may train the 2-D model if it is not cached yet
ARTIFACTS = os.environ.get("VAE_UTILS_BROWSER_ARTIFACTS")  # a folder for screenshots, if set

pytestmark = NEEDS_CHROMIUM
page = notebook_page(NOTEBOOK, RUN_TIMEOUT_MS)  # the notebook, run once in JupyterLab for every test here


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


def _stroke(page, canvas, points, steps: int = 6, pause_ms: int = 200) -> None:
    """Press the mouse at the first point (fractions of the canvas), move through the others,
    release. pause_ms between segments: slower than the pad's 150 ms throttle, so the pad sends
    mid-stroke and the kernel's answer arrives while the stroke goes on, as when a person draws."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    at = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=steps)
        page.wait_for_timeout(pause_ms)
    page.mouse.up()


def _canvas_pixels(page, canvas) -> np.ndarray:
    """The pad's 28 x 28 pixels as the canvas shows them, in [0, 1] (8-bit grey levels)."""
    grey = page.evaluate("""(c) => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)
                                        .filter((_, i) => i % 4 === 0)""", canvas.element_handle())
    return np.asarray(grey, dtype=np.float64).reshape(28, 28) / 255


def _path_pixels(points, step: float = 0.25) -> set[tuple[int, int]]:
    """The (row, col) of the pad's pixels under a polyline given in fractions of the canvas."""
    xy = np.asarray(points, dtype=np.float64) * 28
    out = set()
    for a, b in zip(xy[:-1], xy[1:]):
        for t in np.linspace(0, 1, int(np.ceil(np.hypot(*(b - a)) / step)) + 1):
            x, y = a + t * (b - a)
            out.add((min(int(y), 27), min(int(x), 27)))
    return out


def _model_of_the_notebook():
    """Notebook 04's 2-D VAE with cell 4's settings, from the model cache (trained, as the notebook would, if absent)."""
    from vae_utils.data import load_mnist
    from vae_utils.models import VAEConfig
    from vae_utils.train import TrainConfig, train_or_load

    data = load_mnist(progress=False)
    config = VAEConfig(z_dim=2, hidden=(500,), activation="relu", init="default")
    training = TrainConfig(epochs=10, optimizer="adam", lr=1e-3, snapshot_epochs=tuple(range(1, 11)))
    return train_or_load("mnist_modern_z2", config, training, data["train"], data["test"], progress=False)[0]


def test_drawing_on_the_pad_redraws_the_explorer(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "draw-a-digit-pad"):
        canvas = page.locator("canvas.vae-pad").first
        canvas.scroll_into_view_if_needed()
        canvas.wait_for(state="visible")
        before_src, before_text = src_of(page, PANEL), text_of(page, READOUT)
        assert "test digit #3" in before_text, before_text
        seven = [(0.3, 0.25), (0.7, 0.25), (0.55, 0.5), (0.45, 0.8)]
        _stroke(page, canvas, seven)                                   # a 7, drawn slowly
        wait_for_new_src(page, PANEL, before_src)
        page.wait_for_function("(el) => el.innerText.includes('your drawing')",
                               arg=page.locator(READOUT).first.element_handle())
        page.wait_for_timeout(500)                                      # the stroke's last message has come back
        after_text = text_of(page, READOUT)
        drawn = _canvas_pixels(page, canvas)
        faint = sorted(p for p in _path_pixels(seven) if drawn[p] < 0.5)
        assert not faint, f"pixels under the stroke lost their ink (row, col): {faint}"
        if ARTIFACTS:
            Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
            canvas.scroll_into_view_if_needed()
            page.screenshot(path=str(Path(ARTIFACTS) / "draw-a-digit-pad.png"))
        rec, kl, bound = _bound_terms(after_text)
        assert _bound_terms(before_text) != (rec, kl, bound), "the bound split did not change"
        assert bound == pytest.approx(rec - kl, abs=0.015), after_text
        # The readout is the bound split of the drawing: recomputed here from the canvas's pixels.
        # The kernel got them to 3 decimals, the canvas shows 8-bit greys (off by <= 0.002 each):
        # hence the tolerance, far below the nats between two different drawings.
        split = bound_split(_model_of_the_notebook(), drawn.astype(np.float32),
                            fixed_eps(64, 2, 0))
        assert (rec, kl, bound) == pytest.approx((split.rec, split.kl, split.bound), abs=0.5), (after_text, split)

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
