"""The Colab path, tested as near to Colab as this machine can get.

Colab cannot be reached from here, so we build its twin: a fresh virtual environment with
the packages Colab's runtime ships (tests/colab_constraints.txt: ipywidgets 7.7.1, the classic
notebook 6.5.7 with widgetsnbextension 3.6.10, IPython 7.34, ...) and torch. Then

1. the setup cell of the committed notebooks runs there, as on Colab: a stub `google.colab`
   module makes it take its Colab branch, and its REPO_URL points at a local git repository
   holding this working tree. seaborn is removed first, so the cell has one requirement to
   install. Afterwards vae_utils imports, seaborn is back, and every other package kept its
   version (ipywidgets is still 7.7.1, torch unchanged);
2. notebook 04 runs top to bottom in the classic Notebook front end of that environment, in
   Chromium (playwright), and moving the z1 slider redraws the decoded digit: the front end
   that speaks ipywidgets 7, like Colab's.

Both are slow (the twin takes about 2 minutes to build), so they carry the `colab` marker
(`python -m pytest -m "not colab"` skips them); the README's test command runs them.
The pure functions of vae_utils.colab are tested first, without any environment.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from browser_helpers import (CHROMIUM, clean_copy, free_port, move_z1_and_capture, open_page,
                             press_on_slider, screenshot_on_failure, serving, src_of, text_of,
                             wait_for_new_src)
from vae_utils import colab

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = Path(__file__).with_name("colab_constraints.txt")
SETUP_NOTEBOOK = REPO / "notebooks" / "00_setup.ipynb"
NOTEBOOK = REPO / "notebooks" / "04_latent_manifold.ipynb"
RUN_TIMEOUT_MS = 8 * 60 * 1000  # Run All may train the 2-D model if it is not cached yet


# -- vae_utils.colab's pure functions ----------------------------------------------------------


def test_plan_installs_only_what_is_missing_and_keeps_every_installed_version():
    reqs = [Requirement(r) for r in ["torch>=2.1", "ipywidgets>=7.7", "seaborn", "Scikit_Learn>=1.0"]]
    installed = {"torch": "2.11.0+cpu", "ipywidgets": "7.6.5", "scikit-learn": "1.6.1"}
    missing, kept, outside = colab.plan(reqs, installed)
    assert [r.name for r in missing] == ["seaborn"]
    assert kept == [("torch", "2.11.0+cpu"), ("Scikit_Learn", "1.6.1")]  # names match canonically
    assert outside == [("ipywidgets", "7.6.5", ">=7.7")]  # reported, never upgraded


def test_constraints_hold_every_installed_distribution_at_its_version():
    text = colab.constraints({"torch": "2.11.0+cpu", "ipywidgets": "7.7.1"})
    assert text.splitlines() == ["ipywidgets==7.7.1", "torch==2.11.0+cpu"]
    assert all(Requirement(line).specifier.contains(v) for line, v in
               zip(text.splitlines(), ["7.7.1", "2.11.0+cpu"]))


def test_requirements_are_the_runtime_ones_of_pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    got = {str(r) for r in colab.requirements("vae_utils")}
    if got != {str(Requirement(d)) for d in declared}:
        pytest.skip("the installed vae_utils metadata is older than pyproject.toml: `pip install -e .`")
    assert not any("extra" in str(r.marker) for r in colab.requirements("vae_utils") if r.marker)


def test_install_missing_installs_nothing_when_all_is_there(capsys, monkeypatch):
    monkeypatch.setattr(colab, "requirements", lambda dist: [Requirement("pytest>=1")])
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert colab.install_missing() == []
    out = capsys.readouterr().out
    assert "Kept as they are: pytest" in out and "Installed now: nothing" in out


# -- the Colab twin ------------------------------------------------------------------------------


def _run(cmd, timeout=900, cwd=None):
    """Run a command (by default in a folder that holds no Python package, so that the twin
    never imports this checkout's vae_utils by accident); on failure, fail the test with its output."""
    cwd = cwd or Path(__file__).resolve().parents[1] / "notebooks"
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if proc.returncode:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _freeze(python: Path) -> dict[str, str]:
    out = _run([python, "-I", "-c", "import json, importlib.metadata as m; "
                "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
                "for d in m.distributions()}))"])
    return json.loads(out)


def _snapshot_repository(dest: Path) -> str:
    """A git repository holding this working tree (tracked and new files, uncommitted changes
    included), to stand in for the GitHub repository: returns its file:// URL."""
    dest = dest.resolve()
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "snapshot"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return f"file://localhost{dest}"  # the old pip in Python 3.11's venv refuses git+file:///


def _setup_cell() -> str:
    source = "".join(json.loads(SETUP_NOTEBOOK.read_text())["cells"][1]["source"])
    assert 'REPO_URL = "https://github.com/' in source, "the setup cell no longer sets REPO_URL"
    return source


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A fresh virtual environment with Colab's packages and torch: its python's path."""
    root = tmp_path_factory.mktemp("colab-twin")
    _run([sys.executable, "-m", "venv", root / "venv"], timeout=300)
    python = root / "venv" / "bin" / "python"
    import torch

    _run([python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}"])
    _run([python, "-m", "pip", "install", "-q", "-r", CONSTRAINTS])
    return python


@pytest.fixture(scope="module")
def setup_cell_run(twin, tmp_path_factory):
    """Run the notebooks' setup cell in the twin as Colab would: (before, after, output)."""
    work = tmp_path_factory.mktemp("colab-setup")
    (work / "repo").mkdir()
    url = _snapshot_repository(work / "repo")
    cell = _setup_cell().replace('"https://github.com/aevb-tutorial/aevb-tutorial"', repr(url))
    (work / "cell.py").write_text(cell)
    (work / "run_cell.py").write_text(
        "import sys, types\n"
        "google, stub = types.ModuleType('google'), types.ModuleType('google.colab')\n"
        "google.__path__, google.colab = [], stub\n"
        "sys.modules.update({'google': google, 'google.colab': stub})  # what Colab's kernel has\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "result = InteractiveShell.instance().run_cell(open(sys.argv[1]).read())\n"
        "sys.exit(0 if result.success else 1)\n")
    _run([twin, "-m", "pip", "uninstall", "-y", "-q", "seaborn"])
    before = _freeze(twin)
    out = _run([twin, work / "run_cell.py", work / "cell.py"], cwd=work)
    return before, _freeze(twin), out


@pytest.mark.colab
def test_setup_cell_installs_vae_utils_and_only_what_colab_lacks(setup_cell_run, twin):
    before, after, out = setup_cell_run
    assert before["ipywidgets"] == "7.7.1" and "seaborn" not in before and "vae-utils" not in before
    changed = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}
    assert not changed, f"the setup cell changed packages Colab already had: {changed}"
    assert set(after) - set(before) == {"vae-utils", "seaborn"}, set(after) - set(before)
    assert "Installed now: seaborn" in out and "Kept as they are: torch" in out, out
    versions = _run([twin, "-I", "-c", "import vae_utils, vae_utils.widgets, ipywidgets, torch, seaborn; "
                     "from tqdm.notebook import tqdm; bar = tqdm(range(3)); list(bar); "  # tqdm's widget bar
                     "assert type(bar.container).__name__ == 'TqdmHBox' and bar.n == 3; "
                     "print(vae_utils.__version__, ipywidgets.__version__, torch.__version__)"]
                    ).strip().splitlines()[-1].split()  # the last line: the bar prints its text above
    assert versions[1:] == [before["ipywidgets"], before["torch"]]


# -- notebook 04 in the classic Notebook front end (ipywidgets 7), in a real browser -------------


@pytest.fixture
def classic_notebook(setup_cell_run, twin, tmp_path):
    """The twin's classic Notebook on 127.0.0.1 serving a clean copy of notebook 04:
    (url, log, number of code cells). The kernel is the twin's Python with vae_utils as the
    setup cell installed it."""
    root = tmp_path / "served"
    root.mkdir()
    n_code = clean_copy(NOTEBOOK, root)
    port, token = free_port(), os.urandom(16).hex()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log = tmp_path / "notebook.log"
    cmd = [str(twin), "-m", "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", "--allow-root", f"--NotebookApp.token={token}",
           f"--NotebookApp.notebook_dir={root}"]
    base = f"http://127.0.0.1:{port}"
    with serving(cmd, env, root, log, f"{base}/api/status?token={token}", "The classic Notebook"):
        yield f"{base}/notebooks/{NOTEBOOK.name}?token={token}", log, n_code


@pytest.mark.colab
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install it with `apt-get install chromium`")
def test_z1_slider_redraws_in_the_ipywidgets7_front_end(classic_notebook, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright missing: `pip install playwright`")
    url, log, n_code_cells = classic_notebook
    with sync_api.sync_playwright() as p, open_page(p, url) as page:
        page.wait_for_function("() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
                               " && Jupyter.notebook.kernel.is_connected()", polling=500)
        page.locator("#celllink").click()  # the Cell menu
        page.locator("#run_all_cells").click()
        try:
            page.wait_for_function(
                """(n) => {
                    const p = [...document.querySelectorAll('.code_cell .input_prompt')]
                        .map(e => e.textContent.replace(/\\s/g, ''));
                    return p.length === n && p.every(t => /^In\\[\\d+\\]:$/.test(t));
                }""", arg=n_code_cells, timeout=RUN_TIMEOUT_MS, polling=500)
        except sync_api.TimeoutError:
            errors = page.locator(".output_stderr, .output_error")
            pytest.fail("notebook 04 did not finish in the classic Notebook; errors:\n"
                        + "\n".join(errors.all_inner_texts())[-3000:] + f"\nlog:\n{log.read_text()[-2000:]}")
        assert not page.locator(".output_error").count(), page.locator(".output_error").all_inner_texts()

        before_value, after_value, before_pixels, after_pixels = move_z1_and_capture(
            page, ".ui-slider-handle", os.environ.get("VAE_UTILS_BROWSER_ARTIFACTS"), "classic_explorer")

        # the drawing explorer under ipywidgets 7: its rows slider redraws the panel, and the
        # anywidget pad (anywidget 0.9.21, Colab's) renders its canvas
        with screenshot_on_failure(page, tmp_path, "classic_draw_a_digit"):
            panel_before = src_of(page, "img.vae-draw-panel")
            rows = press_on_slider(page, ".vae-draw-rows", "ArrowRight", 14, handle=".ui-slider-handle")
            wait_for_new_src(page, "img.vae-draw-panel", panel_before)
            page.wait_for_function("(el) => el.innerText.includes('14 of 28 rows hidden')",
                                   arg=page.locator(".vae-draw-readout").first.element_handle())
            readout = text_of(page, ".vae-draw-readout")
            pad_canvases = page.locator("canvas.vae-pad").count()
    assert float(after_value) > float(before_value), (before_value, after_value)
    assert after_pixels != before_pixels, "the decoded digit looks the same after moving z1"
    assert rows.strip() == "14" and "14 of 28 rows hidden" in readout, (rows, readout)
    assert pad_canvases == 1, "the anywidget drawing pad did not render in the ipywidgets 7 front end"
