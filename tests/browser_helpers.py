"""Helpers of the real-browser tests: a clean copy of a notebook, a Jupyter server on
127.0.0.1 that is always stopped, and the browser launched from Debian's chromium."""
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
