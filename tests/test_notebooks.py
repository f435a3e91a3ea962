"""House rules every notebook keeps (nbval runs them; this checks what readers see on GitHub)."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SETUP = '''# Setup: on Colab, install vae_utils from the repository and, of its requirements, only those
# Colab lacks (Colab's torch, numpy, ipywidgets, ... stay as they are); elsewhere this does nothing.
REPO_URL = "https://github.com/{repo}"
import sys
if "google.colab" in sys.modules:
    %pip install -q --no-deps "vae_utils @ git+{REPO_URL}"
    from vae_utils.colab import install_missing
    install_missing()'''
# The one name of the repository (README: how a fork changes it): notebook 00's REPO_URL.
REPO = re.search(r'REPO_URL = "https://github.com/([^/"]+/[^/"]+)"',
                 "".join(json.loads(NOTEBOOKS[0].read_text())["cells"][1]["source"])).group(1)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _src(cell):
    return "".join(cell["source"])


def test_the_series_starts_at_00():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_badge_time_and_setup_cell(path):
    first, second = _cells(path)[:2]
    assert first["cell_type"] == "markdown"
    assert f"colab.research.google.com/github/{REPO}/blob/main/notebooks/{path.name}" in _src(first)
    assert re.search(r"\*\*Time:\*\*.*CPU", _src(first)), "say how long it takes on a CPU"
    assert re.search(r"What you will learn", _src(first))
    assert second["cell_type"] == "code" and _src(second).strip() == SETUP.replace("{repo}", REPO)


def test_the_readme_links_the_same_repository():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    links = set(re.findall(r"(?:mybinder.org/v2/gh|colab.research.google.com/github)/([^/]+/[^/]+)/", readme))
    assert links == {REPO}, f"README links {links}, the notebooks' REPO_URL names {REPO}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_in_order_without_errors(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code" and _src(c).strip()]
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "run Kernel > Restart & Run All before committing"
    for c in code:
        for out in c["outputs"]:
            assert out["output_type"] != "error", f"an error is committed: {out.get('ename')}"
            assert not re.search(r"/(work|tmp|root|home)/", json.dumps(out)), "an output shows a local path"
    assert path.stat().st_size < 3_000_000, "shrink the figures"
