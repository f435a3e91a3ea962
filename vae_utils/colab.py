"""Install vae_utils on Colab without changing anything Colab already has.

Colab's runtime ships torch, numpy, matplotlib, ipywidgets 7.7.1 and more, and its page
renders widgets with a front end that speaks the ipywidgets 7 protocol. A plain
`pip install vae_utils` lets pip upgrade any of them, and an ipywidgets 8 in that front end
shows no sliders. So each notebook's setup cell installs the package with `--no-deps` and then
calls `install_missing()`, which

    1. reads vae_utils' own requirements from its installed metadata,
    2. keeps every requirement that is installed, at the version it has (if that version is
       outside our range, it says so and still keeps it: Colab's own choice wins),
    3. installs only the ones not installed at all, with every installed distribution held at
       its version by a pip constraints file (so a new package cannot upgrade an old one),
    4. prints what it kept and what it installed.

This module imports neither torch nor anything outside the standard library and `packaging`
(which pip and matplotlib both need), so it runs before any requirement is there.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def requirements(dist: str = "vae_utils") -> list[Requirement]:
    """The runtime requirements of an installed distribution (those behind an extra left out)."""
    out = []
    for line in metadata.requires(dist) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def installed_versions() -> dict[str, str]:
    """{canonical name: version} of every distribution on sys.path."""
    found = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), d.version)
    return found


def plan(reqs: list[Requirement], installed: dict[str, str]):
    """Split requirements into (missing, kept, outside): requirements not installed at all;
    (name, version) of those installed within range; (name, version, specifier) of those
    installed outside it. Only `missing` is ever installed."""
    missing, kept, outside = [], [], []
    for req in reqs:
        version = installed.get(canonicalize_name(req.name))
        if version is None:
            missing.append(req)
            continue
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = True  # a version pip cannot parse: not ours to judge
        (kept.append((req.name, version)) if ok else outside.append((req.name, version, str(req.specifier))))
    return missing, kept, outside


def constraints(installed: dict[str, str]) -> str:
    """A pip constraints file holding every installed distribution at its version."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()))


def install_missing(dist: str = "vae_utils", quiet: bool = True) -> list[str]:
    """Install the requirements of `dist` that are not installed, changing nothing installed.

    Returns the names installed. Prints one line for what was kept and one for what was
    installed; a requirement installed outside our range gets its own line.
    """
    installed = installed_versions()
    missing, kept, outside = plan(requirements(dist), installed)
    print(f"{dist} {metadata.version(dist)} installed.")
    if kept:
        print("Kept as they are: " + ", ".join(f"{n} {v}" for n, v in kept) + ".")
    for name, version, spec in outside:
        print(f"Kept {name} {version} although {dist} asks for {name}{spec}: "
              f"upgrading it could break this runtime; if something fails, run %pip install '{name}{spec}'.")
    if not missing:
        print("Installed now: nothing (every requirement was already here).")
        return []
    fd, path = tempfile.mkstemp(suffix=".txt", prefix="installed-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(constraints(installed))
        cmd = [sys.executable, "-m", "pip", "install", *(["-q"] if quiet else []), "-c", path,
               *(str(r) for r in missing)]
        subprocess.run(cmd, check=True)
    finally:
        os.unlink(path)
    names = [r.name for r in missing]
    importlib.invalidate_caches()  # let this process see what pip just wrote
    now = installed_versions()
    print("Installed now: " + ", ".join(f"{n} {now.get(canonicalize_name(n), '?')}" for n in names) + ".")
    return names
