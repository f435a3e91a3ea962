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
import secrets
import sys
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, clean_copy, free_port, move_z1_and_capture, open_page, serving

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_latent_manifold.ipynb"
RUN_TIMEOUT_MS = 8 * 60 * 1000  # Run All may train the 2-D model if it is not cached yet
ARTIFACTS = os.environ.get("VAE_UTILS_BROWSER_ARTIFACTS")  # a folder for screenshots, if set

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install chromium`")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Python playwright missing: `pip install playwright`")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a clean copy of notebook 04: (url, log, # code cells)."""
    root = tmp_path / "served"
    root.mkdir()
    n_code = clean_copy(NOTEBOOK, root)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--allow-root", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.port_retries=0", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    base = f"http://127.0.0.1:{port}"
    with serving(cmd, env, root, log, f"{base}/api/status?token={token}", "JupyterLab"):
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", log, n_code


def _dismiss_news_prompt(page) -> None:
    """JupyterLab may ask whether to fetch Jupyter news; answer No if it does."""
    button = page.locator(".Toastify__toast").get_by_role("button", name="No", exact=True)
    if button.count() and button.first.is_visible():
        button.first.click()


def _run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _wait_until_done(page, n_code_cells: int, timeout_ms: int) -> None:
    """Wait until every code cell has run: each prompt shows a number, none shows [*]."""
    page.wait_for_function(
        """(n) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            return prompts.length === n && prompts.every(t => /^\\[\\d+\\]:?$/.test(t));
        }""", arg=n_code_cells, timeout=timeout_ms, polling=500)


def test_z1_slider_redraws_the_decoded_digit(lab):
    url, log, n_code_cells = lab
    with sync_api.sync_playwright() as p, open_page(p, url) as page:
        page.locator(".jp-Notebook").first.wait_for()
        page.wait_for_timeout(2000)  # let the kernel session attach before running
        _dismiss_news_prompt(page)
        _run_all(page)
        try:
            _wait_until_done(page, n_code_cells, RUN_TIMEOUT_MS)
        except sync_api.TimeoutError:
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            pytest.fail("the notebook did not finish running in JupyterLab; stderr outputs:\n"
                        + "\n".join(errors.all_inner_texts())[-3000:]
                        + f"\nserver log:\n{log.read_text()[-2000:]}")
        _dismiss_news_prompt(page)

        before_value, after_value, before_pixels, after_pixels = move_z1_and_capture(
            page, ".noUi-handle", ARTIFACTS, "explorer")

    assert float(after_value) > float(before_value), (before_value, after_value)
    assert after_pixels != before_pixels, "the decoded digit looks the same after moving z1"
