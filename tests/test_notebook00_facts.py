"""What notebook 00 states about the series and the package, checked against the files.

00's road map names every notebook with its CPU time, and its package table every module of
vae_utils; both go stale when a notebook or a module is added, renamed or re-timed. These
tests fail then, and say what to update.
"""
import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE = ROOT / "vae_utils"
FRONT_END = {"plots", "manifold", "maps", "png", "widgets",
             "explore_digit", "explore_units", "explore_training", "explore_beta", "explore_k"}
FRONT_END_LIBRARIES = {"matplotlib", "ipywidgets", "IPython", "seaborn", "anywidget"}
# a time as the road map and the notebooks' first cells write it: "about 15 seconds", "under 1 min"
TIME = re.compile(r"(?:about|under) (?:half a |a |\d+ )?(?:seconds|minutes|minute|min)\b")


def _markdown(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def _section(heading):
    """The markdown cell of notebook 00 that starts with `heading`."""
    cells = [s for s in _markdown(NOTEBOOKS[0]) if s.startswith(heading)]
    assert len(cells) == 1, f"notebook 00 should have one markdown cell starting {heading!r}"
    return cells[0]


def _time_line(path):
    lines = [line for line in _markdown(path)[0].splitlines() if line.startswith("**Time:**")]
    assert len(lines) == 1, f"{path.name}: one **Time:** line in the first cell"
    return lines[0]


def test_the_road_map_lists_every_notebook_once_in_order():
    rows = [line for line in _section("## The series").splitlines() if line.startswith("| [")]
    linked = [re.search(r"\]\((\d\d_[^)]+\.ipynb)\)", row).group(1) for row in rows]
    assert linked == [p.name for p in NOTEBOOKS], "update the road map in notebook 00 ('## The series')"


def test_the_road_map_times_are_the_notebooks_own():
    rows = [line for line in _section("## The series").splitlines() if line.startswith("| [")]
    for row, path in zip(rows, NOTEBOOKS):
        times = TIME.findall(row.rsplit("|", 2)[-2])   # the last column
        assert times, f"the road map gives no time for {path.name}: {row}"
        line = _time_line(path)
        for t in times:
            assert t in line, f"00's road map says {t!r} for {path.name}, whose first cell says: {line}"


def test_the_package_table_names_every_module_and_no_other():
    table = [line for line in _section("## The package").splitlines() if line.startswith("|")]
    # the module column: names in backticks that are plain identifiers (not `TrainConfig`-style classes)
    named = {m for row in table for m in re.findall(r"`([a-z_]+)`", row.split("|")[2])}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert named == modules, (f"notebook 00's package table: missing {sorted(modules - named)}, "
                              f"not modules {sorted(named - modules)}")


def _imports(path):
    """Every module a file imports, anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found |= {base} | {f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names}
    return found


def test_nothing_but_the_front_end_imports_plots_widgets_or_a_plotting_library():
    # notebook 00: "`plots`, `manifold`, `maps`, `png`, `widgets` (nothing else in the package imports them)"
    for path in PACKAGE.glob("*.py"):
        if path.stem in FRONT_END:
            continue
        for name in _imports(path):
            parts = name.lstrip(".").split(".")
            assert not (set(parts) & FRONT_END and (name.startswith(".") or parts[0] == "vae_utils")), \
                f"{path.name} imports {name}"
            assert parts[0] not in FRONT_END_LIBRARIES, f"{path.name} imports {name}"


def test_the_notation_table_points_at_notation_the_notebooks_use():
    # 00's table: "L_K: in notebook 05, the importance-weighted bound with K samples"
    assert "in notebook 05" in _section("## Notation: the bound")
    nb05 = [p for p in NOTEBOOKS if p.name.startswith("05_")]
    assert len(nb05) == 1 and any(r"\mathcal{L}_K" in s for s in _markdown(nb05[0]))
