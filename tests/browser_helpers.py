"""Helpers of the real-browser tests: a clean copy of a notebook, a Jupyter server on
127.0.0.1 that is always stopped, the browser launched from Debian's chromium, a notebook run
top to bottom in JupyterLab (`notebook_in_lab`), and what a test does to a widget there:
move a slider with the keyboard, wait for an image to change, keep a screenshot on failure.

A test file of one notebook's explorers runs that notebook once, in a module-scoped fixture:

    pytestmark = NEEDS_CHROMIUM
    page = notebook_page(NOTEBOOK, RUN_TIMEOUT_MS)

    def test_the_k_slider_redraws(page, tmp_path):
        with screenshot_on_failure(page, tmp_path, "k-slider"):
            before = src_of(page, "img.vae-k-histogram")
            press_on_slider(page, ".vae-k", "ArrowRight", 3)
            wait_for_new_src(page, "img.vae-k-histogram", before)
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import secrets
import sys

import pytest

WIDGET_TIMEOUT_MS = 5 * 60 * 1000  # for each browser step (see open_page)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps"]


def clean_copy(notebook: Path, folder: Path) -> int:
    """Write `notebook` into `folder` with its outputs cleared (the committed file is never
    opened in a browser, so never saved over); return its number of code cells."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, folder / notebook.name)
    return sum(c.cell_type == "code" for c in nb.cells)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the server and its kernels), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def serving(cmd: list[str], env: dict, cwd: Path, log: Path, status_url: str, name: str):
    """Start a Jupyter server, wait until `status_url` answers (90 s at most), yield; always stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(status_url, timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield proc
    finally:
        stop(proc)


@contextmanager
def open_page(playwright, url: str):
    """Debian's chromium, headless, with one 1400x1000 page at `url`; always closed."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # Generous: on a busy shared machine the browser can take minutes to draw a widget. A
        # timeout only decides how long a real failure takes to be reported, never a pass.
        page.set_default_timeout(WIDGET_TIMEOUT_MS)
        page.goto(url)
        yield page
    finally:
        browser.close()


def move_z1_and_capture(page, handle: str, artifacts: str | None, name: str):
    """Move notebook 04's z1 slider 20 steps right with the arrow key (its `handle` focused:
    ".noUi-handle" in ipywidgets 8, ".ui-slider-handle" in ipywidgets 7) and wait for the
    decoded digit's image to change. Returns (readout before, after, pixels before, after).
    With `artifacts`, saves a screenshot there as <name>.png."""
    image = page.locator("img.vae-decoded").first
    slider = page.locator(".vae-z1").first
    image.scroll_into_view_if_needed()
    image.wait_for(state="visible")
    readout = slider.locator(".widget-readout")
    before_value, before_src, before_pixels = readout.text_content(), image.get_attribute("src"), image.screenshot()
    slider.locator(handle).first.focus()
    for _ in range(20):  # 20 steps of 0.05: z1 from 0 to 1
        page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src",
                           arg=[image.element_handle(), before_src], timeout=WIDGET_TIMEOUT_MS)
    page.wait_for_timeout(500)  # let the new image paint
    after_value, after_pixels = readout.text_content(), image.screenshot()
    if artifacts:
        out = Path(artifacts)
        out.mkdir(parents=True, exist_ok=True)
        slider.scroll_into_view_if_needed()
        page.screenshot(path=str(out / f"{name}.png"))
    return before_value, after_value, before_pixels, after_pixels


# -- a notebook in JupyterLab ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def lab_server(notebook: Path, tmp_path: Path):
    """JupyterLab on 127.0.0.1 (a free port, a random token) serving a clean copy of `notebook`
    from tmp_path/"served"; yields (url of the notebook, server log, number of code cells)."""
    root = tmp_path / "served"
    root.mkdir()
    n_code = clean_copy(notebook, root)
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
        yield f"{base}/lab/tree/{notebook.name}?token={token}", log, n_code


def dismiss_news_prompt(page) -> None:
    """JupyterLab may ask whether to fetch Jupyter news; answer No if it does."""
    button = page.locator(".Toastify__toast").get_by_role("button", name="No", exact=True)
    if button.count() and button.first.is_visible():
        button.first.click()


def run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def start_running(page, attempts: int = 3, wait_ms: int = 90_000) -> None:
    """Run > Run All Cells, and check that it took: some cell's prompt shows [*] or a number.
    A click made while the kernel is still attaching can be lost (seen once: no cell ran in
    20 minutes); then click again, up to `attempts` times. (A click that was only slow to take
    runs the notebook twice: slower, never wrong.)"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        run_all(page)
        try:
            page.wait_for_function(
                """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                    .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))""",
                timeout=wait_ms, polling=500)
            return
        except PlaywrightTimeout:
            dismiss_news_prompt(page)
    pytest.fail(f"Run All Cells started no cell in {attempts} tries of {wait_ms // 1000} s")


def wait_until_done(page, n_code_cells: int, timeout_ms: int) -> None:
    """Wait until every code cell has run: each prompt shows a number, none shows [*]."""
    page.wait_for_function(
        """(n) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            return prompts.length === n && prompts.every(t => /^\\[\\d+\\]:?$/.test(t));
        }""", arg=n_code_cells, timeout=timeout_ms, polling=500)


@contextmanager
def notebook_in_lab(playwright, notebook: Path, tmp_path: Path, run_timeout_ms: int):
    """`notebook` (a clean copy) open in JupyterLab in chromium, run with Run > Run All Cells to
    its last cell; yields the page. Fails with the notebook's stderr outputs and the server log
    if the run does not finish within run_timeout_ms. Server, kernel and browser always stop."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with lab_server(notebook, tmp_path) as (url, log, n_code), open_page(playwright, url) as page:
        page.locator(".jp-Notebook").first.wait_for()
        page.wait_for_timeout(2000)  # let the kernel session attach before running
        dismiss_news_prompt(page)
        start_running(page)
        try:
            wait_until_done(page, n_code, run_timeout_ms)
        except PlaywrightTimeout:
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            pytest.fail(f"{notebook.name} did not finish running in JupyterLab; stderr outputs:\n"
                        + "\n".join(errors.all_inner_texts())[-3000:]
                        + f"\nserver log:\n{log.read_text()[-2000:]}")
        dismiss_news_prompt(page)
        yield page


NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install chromium`")


def notebook_page(notebook: Path, run_timeout_ms: int):
    """A module-scoped `page` fixture: `notebook` run to its end in JupyterLab (`notebook_in_lab`)
    once for every test of the file that binds it (`page = notebook_page(...)`). Skips those
    tests when Python playwright is missing."""
    @pytest.fixture(scope="module")
    def page(tmp_path_factory):
        sync_api = pytest.importorskip("playwright.sync_api",
                                       reason="Python playwright missing: `pip install playwright`")
        with sync_api.sync_playwright() as p, notebook_in_lab(
                p, notebook, tmp_path_factory.mktemp("lab"), run_timeout_ms) as pg:
            yield pg
    return page


# -- what a test does to a widget ----------------------------------------------------------------


@contextmanager
def screenshot_on_failure(page, folder: Path, name: str):
    """On any failure inside the block, save the page as folder/<name>.png (pytest's tmp_path:
    the path is printed with the failure), then re-raise."""
    try:
        yield
    except BaseException:
        shot = Path(folder) / f"{name}.png"
        try:
            page.screenshot(path=str(shot))
            print(f"screenshot of the failure: {shot}")
        except Exception as err:  # the page may be gone; the original failure matters more
            print(f"no screenshot ({err})")
        raise


def src_of(page, selector: str) -> str:
    """The src (a data: URL for an ipywidgets Image) of the first element matching `selector`,
    scrolled into view and visible first."""
    el = page.locator(selector).first
    el.scroll_into_view_if_needed()
    el.wait_for(state="visible")
    return el.get_attribute("src")


def wait_for_new_src(page, selector: str, before: str) -> str:
    """Wait until the first `selector` element's src differs from `before`; return the new src."""
    el = page.locator(selector).first
    page.wait_for_function("([el, src]) => el.getAttribute('src') !== src",
                           arg=[el.element_handle(), before], timeout=WIDGET_TIMEOUT_MS)
    return el.get_attribute("src")


def text_of(page, selector: str) -> str:
    """The visible text of the first element matching `selector`."""
    el = page.locator(selector).first
    el.scroll_into_view_if_needed()
    return el.inner_text()


def press_on_slider(page, selector: str, key: str, times: int, handle: str = ".noUi-handle") -> str:
    """Focus the handle of the slider with CSS class `selector` (ipywidgets 8: .noUi-handle) and
    press `key` (ArrowRight, ArrowLeft, ...) `times` times: one step each. Returns the slider's
    readout afterwards."""
    slider = page.locator(selector).first
    slider.scroll_into_view_if_needed()
    slider.locator(handle).first.focus()
    for _ in range(times):
        page.keyboard.press(key)
    return slider.locator(".widget-readout").first.text_content()
