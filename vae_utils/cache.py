"""The model cache: one checkpoint file per (name, settings), never one for another.

A cached model is only worth loading if it is what training would produce now, so a file
is found by its name plus the key of everything that made it (vae_utils.checkpoints.key):
`checkpoint_dir() / f"{name}-{key}.pt"`. Two settings under one name live side by side;
only the file of the exact same key is ever rewritten. A miss says why in full: for every
other checkpoint of that name, each setting that differs.

Broken files are never deleted and never silently overwritten: `lookup` reports them and
`store` refuses to replace them unless given ``replace_broken=True``, which moves the file
to ``<file>.broken`` (``.broken.1``, ... if taken) with a warning. `cached` passes that
(by default) only after checking, before training, that the file is really broken.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable

from .checkpoints import (CheckpointError, CheckpointUnreadable, checkpoint_dir, differences, full_fields,
                          key, load, read_record, save)


def path_for(name: str, fields: dict) -> Path:
    """checkpoint_dir() / f"{name}-{key(fields)}.pt"."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise ValueError(f"bad checkpoint name {name!r}: use a plain file name")
    return checkpoint_dir() / f"{name}-{key(fields)}.pt"


def _others(name: str, path: Path, asked: dict) -> list[str]:
    """One entry per other checkpoint of `name`: what differs, read without verifying."""
    pattern = re.compile(re.escape(name) + r"(-[0-9a-f]{12})?\.pt")
    lines = []
    for other in sorted(p for p in path.parent.glob("*.pt") if pattern.fullmatch(p.name) and p != path):
        try:
            try:
                record = read_record(other, verify=False, mmap=True)
            except CheckpointUnreadable:
                record = read_record(other, verify=False)
        except CheckpointError as e:
            lines.append(f"{other.name}: unreadable, ignored ({e})")
            continue
        if record["format"] == 1:
            saved, what = {"model": record.get("model_config"), "train": record.get("train_config")}, \
                " (format 1, from an older vae_utils; kept as is)"
        else:
            saved, what = record["fields"], ""
        diffs = differences(saved, asked) or ["nothing (renamed by hand?)"]
        lines.append(f"{other.name}{what} differs in:\n    " + "\n    ".join(diffs))
    return lines


def _lookup(name: str, fields: dict):
    """(payload or None, reason, the CheckpointError of the file at the target or None)."""
    path, asked = path_for(name, fields), full_fields(fields)
    if path.exists():
        try:
            return load(path, fields=asked), f"loaded {path}", None
        except CheckpointError as e:
            return None, (f"{e}\nIt is left in place; store(..., replace_broken=True), as cached() "
                          f"does by default, moves it to {path.name}.broken (never deleting it)."), e
    others = _others(name, path, asked)
    if not others:
        return None, "no cached model of this name yet", None
    return None, (f"no cached model with these settings ({path.name}); the cached ones of this "
                  "name, in checkpoint_dir():\n  " + "\n  ".join(others)), None


def lookup(name: str, fields: dict) -> tuple[dict | None, str]:
    """(payload, "loaded <file>") if the checkpoint of `name` with these `fields` exists and
    verifies; else (None, reason). The reason names a broken file and its error (the file is
    left alone), or lists, for every other checkpoint of `name`, each setting that differs."""
    return _lookup(name, fields)[:2]


def _move_aside(path: Path) -> Path:
    dest, n = path.with_name(path.name + ".broken"), 0
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.broken.{n}")
    os.rename(path, dest)
    warnings.warn(f"moved the unusable checkpoint {path} to {dest.name}", stacklevel=3)
    return dest


def store(name: str, fields: dict, payload: dict, replace_broken: bool = False) -> Path:
    """Save `payload` as the checkpoint of `name` with `fields`; no other file is touched.

    A file already at that path is replaced only if it is this very checkpoint (same
    settings, verified). A broken one (unreadable, corrupt, or other settings under this
    name) makes store raise its CheckpointError, unless `replace_broken`: then it is moved
    to ``<file>.broken`` (never deleted) and the new file written.
    """
    path, asked = path_for(name, fields), full_fields(fields)
    error = _lookup(name, fields)[2] if path.exists() else None
    if error is not None:
        if not replace_broken:
            raise type(error)(f"{error}\nNot overwritten: pass replace_broken=True to move it "
                              f"to {path.name}.broken first.")
        _move_aside(path)
    return save(path, payload, asked)


def cached(name: str, fields: dict, make: Callable[[], dict], verbose: bool = True,
           replace_broken: bool = True) -> dict:
    """The stored payload of `name` with `fields`, else ``make()``, stored and returned.

    When it makes anew, it prints why (every line). A broken file at the target is moved to
    ``<file>.broken`` after training; with ``replace_broken=False`` it raises before training.
    """
    payload, reason, error = _lookup(name, fields)
    if payload is not None:
        return payload
    if error is not None and not replace_broken:
        raise type(error)(reason)
    if verbose:
        print(f"training {name}: {reason}")
    payload = make()
    store(name, fields, payload, replace_broken=replace_broken)
    return payload
