"""The two install routes agree: environment.yml (conda, Binder) and pyproject.toml (pip)."""
import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _env():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_yml_names_every_runtime_dependency():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = {_name(d) for d in _env()["dependencies"] if isinstance(d, str)}
    missing = [d for d in deps if CONDA_NAMES.get(_name(d), _name(d)) not in conda]
    assert not missing, f"environment.yml lacks {missing}"


def test_environment_yml_installs_the_package_and_the_widget_front_end():
    deps = _env()["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip or "." in pip
    names = {_name(d) for d in deps if isinstance(d, str)}
    assert {"jupyterlab", "jupyterlab-widgets", "ipywidgets"} <= names


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text(), f"README.md does not show {ci!r}"
