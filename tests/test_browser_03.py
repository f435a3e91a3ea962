"""Notebook 03's explorers as a person uses them: in JupyterLab, in a real browser.

Runs a clean copy of notebooks/03_aevb_mnist.ipynb with Run > Run All Cells, once for every
test of this file (its models come from the model cache when notebook 03 has filled it; its
"Watch a model train" section trains a small model live on every run), then moves each
control as a person does:

    unit walker (J = 20)    arrow keys on a high-KL unit's slider: the image changes and that
                            unit's readout shows a positive change; a click on "back to μ(x)":
                            that slider back at its start, the readouts at zero change; a new
                            test digit in the dropdown: every slider back at mu(x), likewise
    unit walker (J = 200)   arrow keys on a unit without KL: its readout shows a change below
                            one grey level on average and no pixel changed by 0.5 or more
    training monitor        it ended at the last epoch with one live redraw per epoch; arrow
                            keys on the epoch slider: the reconstructions and the curve change,
                            and the readout states the bound the notebook printed for that epoch

Needs chromium and Python playwright (see tests/test_browser.py); skipped without them.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_helpers import (NEEDS_CHROMIUM, notebook_page, press_on_slider, screenshot_on_failure, src_of,
                             text_of, wait_for_new_src)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "03_aevb_mnist.ipynb"
RUN_TIMEOUT_MS = 40 * 60 * 1000  # Run All trains notebook 03's 12 models if they are not cached yet
GREY_LEVEL, STROKE = 1 / 255, 0.5  # vae_utils.explore_units' scales (not imported: no torch needed here)

pytestmark = NEEDS_CHROMIUM
page = notebook_page(NOTEBOOK, RUN_TIMEOUT_MS)  # the notebook, run once in JupyterLab for every test here


def _change(readout: str) -> tuple[float, float, str]:
    """(mean |Δy|, max |Δy|, verdict) from a change readout 'mean |Δy| 0.0123 · max 0.456 · verdict'."""
    m = re.search(r"mean \|Δy\| (\d+\.\d+) · max (\d+\.\d+) · (.+)$", readout.strip())
    assert m, f"no change readout in {readout!r}"
    return float(m.group(1)), float(m.group(2)), m.group(3)


def _wait_for_new_text(page, selector: str, before: str) -> str:
    el = page.locator(selector).first
    page.wait_for_function("([el, text]) => el.innerText !== text", arg=[el.element_handle(), before])
    return el.inner_text()


def _settled_text(page, selector: str, quiet_ms: int = 1500) -> str:
    """The text of the first `selector` element once it has not changed for `quiet_ms`: a front
    end may send a slider's last values after the first redraw, and a control moved next must
    not race them."""
    el = page.locator(selector).first
    text = el.inner_text()
    while True:
        page.wait_for_timeout(quiet_ms)
        now = el.inner_text()
        if now == text:
            return now
        text = now


def _press_inwards(page, slider: str, times: int) -> tuple[float, float]:
    """Move the slider `times` steps towards its far side (right if it sits left of 0, else
    left), so that it moves the full distance; returns its readout (before, after)."""
    before = _number(page.locator(slider).first.locator(".widget-readout").first.text_content())
    after = press_on_slider(page, slider, "ArrowRight" if before <= 0 else "ArrowLeft", times)
    return before, _number(after)


def _number(readout: str) -> float:
    return float(readout.strip().replace("\u2212", "-"))  # a slider's readout writes minus as U+2212


def _text_once_it_shows(page, selector: str, part: str) -> str:
    """The text of the first `selector` element, scrolled into view and once it contains `part`
    (JupyterLab renders a widget when its cell comes into view)."""
    el = page.locator(selector).first
    el.scroll_into_view_if_needed()
    page.wait_for_function("([el, part]) => el.innerText.includes(part)", arg=[el.element_handle(), part])
    return el.inner_text()


J20, J200 = ".vae-units-J20", ".vae-units-J200"


def test_a_high_kl_unit_moves_the_image(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "units-J20-high-kl"):
        image, readout = f"{J20} img.vae-units-image", f"{J20} .vae-unit-readout"
        before_src, before_text = src_of(page, image), text_of(page, readout)
        assert _change(before_text)[:2] == (0.0, 0.0), before_text  # the slider starts at mu(x)
        start, end = _press_inwards(page, f"{J20} .vae-unit-top", 20)  # 20 steps of 0.05: one unit of z
        assert abs(end - start) == pytest.approx(1.0, abs=0.06), (start, end)
        wait_for_new_src(page, image, before_src)
        mean, peak, verdict = _change(_wait_for_new_text(page, readout, before_text))
        assert mean > 0 and peak > 0, (mean, peak)
        assert _change(text_of(page, f"{J20} .vae-units-readout"))[0] > 0  # all moves together


def test_a_unit_without_kl_barely_moves_the_image(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "units-J200-no-kl"):
        readout = f"{J200} .vae-unit-readout >> nth=3"  # the first unit with the least KL (after 3 top ones)
        before_text = text_of(page, readout)
        kl = float(re.match(r"KL (\d+\.\d+) nats", before_text).group(1))
        assert kl < 0.01, before_text
        start, end = _press_inwards(page, f"{J200} .vae-unit-bottom", 40)  # two units of z
        assert abs(end - start) == pytest.approx(2.0, abs=0.06), (start, end)
        mean, peak, verdict = _change(_wait_for_new_text(page, readout, before_text))
        assert mean < GREY_LEVEL and peak < STROKE, (mean, peak)
        assert verdict in ("no visible change", "no pixel changes by 0.5 or more"), verdict


def test_back_to_mu_resets_the_walk(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "units-J20-back-to-mu"):
        image, together = f"{J20} img.vae-units-image", f"{J20} .vae-units-readout"
        slider = f"{J20} .vae-unit-top >> nth=2"
        before_src, before_text = src_of(page, image), text_of(page, together)
        start, end = _press_inwards(page, slider, 10)  # walk away from mu(x) first
        assert abs(end - start) == pytest.approx(0.5, abs=0.06), (start, end)
        wait_for_new_src(page, image, before_src)
        _wait_for_new_text(page, together, before_text)
        moved_text, moved_src = _settled_text(page, together), src_of(page, image)  # every key press arrived
        assert _change(moved_text)[0] > 0, moved_text
        page.locator(f"{J20} .vae-units-reset").first.click()
        wait_for_new_src(page, image, moved_src)
        after = _change(_wait_for_new_text(page, together, moved_text))
        assert after == (0.0, 0.0, "no visible change"), after  # every slider back at mu(x)
        shown = page.locator(slider).first.locator(".widget-readout").first
        page.wait_for_function("([el, v]) => Math.abs(parseFloat(el.textContent.replace('\u2212', '-')) - v) < 0.006",
                               arg=[shown.element_handle(), start])
        units = page.locator(f"{J20} .vae-unit-readout")
        assert all(_change(units.nth(k).inner_text())[:2] == (0.0, 0.0) for k in range(units.count()))


def test_another_digit_resets_the_walk(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "units-J20-digit"):
        image, together = f"{J20} img.vae-units-image", f"{J20} .vae-units-readout"
        before_src, before_text = src_of(page, image), text_of(page, together)
        _press_inwards(page, f"{J20} .vae-unit-top >> nth=1", 10)  # walk away from mu(x) first
        wait_for_new_src(page, image, before_src)
        _wait_for_new_text(page, together, before_text)
        before_text, before_src = _settled_text(page, together), src_of(page, image)  # every key press arrived
        assert _change(before_text)[0] > 0, before_text
        page.locator(f"{J20} .vae-units-digit select").first.select_option(label="#1 (a 2)")
        wait_for_new_src(page, image, before_src)
        after = _change(_wait_for_new_text(page, together, before_text))
        assert after == (0.0, 0.0, "no visible change"), after  # every slider back at the new mu(x)
        units = page.locator(f"{J20} .vae-unit-readout")
        assert all(_change(units.nth(k).inner_text())[:2] == (0.0, 0.0) for k in range(units.count()))


def _printed_bounds(page) -> dict[int, float]:
    """{epoch: held-out bound} from the table the notebook prints under the monitor's figure."""
    table = _text_once_it_shows(page, ".jp-OutputArea-output:has-text('bound on 1,000 training images')",
                                "bound on 1,000 training images")
    return {int(e): float(b) for e, b in re.findall(r"^\s*(\d+)\s+(-?\d+\.\d+)", table, flags=re.M)}


def test_training_monitor_redrew_every_epoch_and_its_slider_goes_back(page, tmp_path):
    with screenshot_on_failure(page, tmp_path, "training-monitor"):
        status = _text_once_it_shows(page, ".vae-train-status", "done:")
        m = re.search(r"done: epoch (\d+)/(\d+) · (\d+) live redraws, one per epoch", status)
        assert m and m.group(1) == m.group(2) == m.group(3), status
        last, bounds = int(m.group(2)), _printed_bounds(page)
        assert sorted(bounds) == list(range(last + 1)), bounds
        readout = text_of(page, ".vae-train-readout")
        assert readout.startswith(f"after epoch {last}: held-out bound {bounds[last]:.2f} nats"), readout

        recons, curve = src_of(page, "img.vae-train-recons"), src_of(page, "img.vae-train-curve")
        shown = press_on_slider(page, ".vae-train-epoch", "ArrowLeft", 3)
        assert int(_number(shown)) == last - 3, shown
        wait_for_new_src(page, "img.vae-train-recons", recons)
        wait_for_new_src(page, "img.vae-train-curve", curve)
        readout = _wait_for_new_text(page, ".vae-train-readout", readout)
        assert readout.startswith(f"after epoch {last - 3}: held-out bound {bounds[last - 3]:.2f} nats"), readout
