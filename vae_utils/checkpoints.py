"""Checkpoint files: what a trained model's file holds, its key, and how it is verified.

A checkpoint's key covers the settings the caller gives (algorithm, model and training
configs, data, snapshots...), the package version and a fingerprint of the code that
trains models; the full settings are stored inside the file too, so that a miss can say
which settings differ (vae_utils.cache keeps the files under these keys).

On disk, a checkpoint is one ``torch.save`` file (written atomically, permissions from the
umask) holding the dict ``{"kind": "vae_utils checkpoint", "format": 2, "fields": {...},
"payload": {...}, "checksum": "<sha256 hex>"}``. The checksum covers kind, format, fields
and payload: every tensor (dtype, shape, requires_grad, bytes) and every other leaf, dict
keys in sorted order. torch does not check the zip's CRCs, so a flipped byte in tensor data
would otherwise load silently. A flip in the zip's own bookkeeping (padding, timestamps)
that changes nothing loaded is harmless and passes: what `load` returns is always
bit-for-bit what `save` was given.

Legacy format-1 files (``{name}.pt``) are read to explain a miss, never written or moved.
"""
from __future__ import annotations

import ast
import collections
import functools
import hashlib
import importlib.util
import json
import numbers
import os
from pathlib import Path

import torch

from .io import atomic_write

FORMAT = 2
KIND = "vae_utils checkpoint"
RESERVED = ("version", "code")  # added to every key's fields
MODULES = ("vae_utils.models", "vae_utils.elbo", "vae_utils.config", "vae_utils.train", "vae_utils.run", "vae_utils.data",
           "vae_utils.evaluate", "vae_utils.importance", "vae_utils.wake_sleep", "vae_utils.mcem",
           "vae_utils.hmc", "vae_utils.autoencoder")


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message names the file."""


class CheckpointUnreadable(CheckpointError):
    """Empty, truncated, garbage, not a vae_utils checkpoint, or of an unknown format."""


class CheckpointCorrupt(CheckpointError):
    """Read, but its contents do not match the checksum stored with them (e.g. a flipped byte)."""


class CheckpointMismatch(CheckpointError):
    """A valid checkpoint saved under other settings; the message lists every difference."""


def checkpoint_dir() -> Path:
    """$VAE_UTILS_CHECKPOINTS, else <data dir>/checkpoints, where the data dir is $VAE_UTILS_DATA,
    else $XDG_CACHE_HOME/vae_utils, else ~/.cache/vae_utils (the rule of vae_utils.data)."""
    if os.environ.get("VAE_UTILS_CHECKPOINTS"):
        return Path(os.environ["VAE_UTILS_CHECKPOINTS"]).expanduser()
    if os.environ.get("VAE_UTILS_DATA"):
        return Path(os.environ["VAE_UTILS_DATA"]).expanduser() / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vae_utils" / "checkpoints"


# -- the key ---------------------------------------------------------------------------------

def code_fingerprint(modules=MODULES) -> str:
    """A 12-hex-digit hash of the code of `modules` (dotted names; missing ones are skipped).

    Each module's source is parsed and its docstrings removed, then ``ast.dump`` is hashed:
    comments, formatting and docstrings do not change the fingerprint, any code change does.
    Sources are read, not imported, once per process (``code_fingerprint.cache_clear()``
    forgets). ``ast.dump`` may differ between Python minor versions, so may the fingerprint.
    """
    return _fingerprint(tuple(modules))


@functools.lru_cache(maxsize=None)
def _fingerprint(modules: tuple) -> str:
    h = hashlib.sha256()
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "get_source"):
            continue
        source = spec.loader.get_source(name)
        if source is None:
            continue
        tree = ast.parse(source)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                    and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        h.update(f"{name}\0{ast.dump(tree)}\0".encode())
    return h.hexdigest()[:12]


code_fingerprint.cache_clear = _fingerprint.cache_clear


def _canonical(fields) -> str:
    """Canonical JSON; refuses what JSON would blur or cannot hold (non-str keys, objects)."""
    def check(x, where):
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, (list, tuple)) else None
        if items is None and not (x is None or isinstance(x, (str, int, float, bool))):
            raise TypeError(f"checkpoint field {where} = {x!r}: use str, int, float, bool, None, "
                            "lists and dicts with str keys (e.g. dataclasses.asdict(config))")
        for k, v in items or ():
            if isinstance(x, dict) and not isinstance(k, str):
                raise TypeError(f"checkpoint field {where}.{k!r}: keys must be str")
            check(v, f"{where}.{k}" if where else str(k))
    if not isinstance(fields, dict):
        raise TypeError(f"checkpoint fields must be a dict, not {type(fields).__name__}")
    check(fields, "")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def full_fields(fields: dict) -> dict:
    """`fields` as stored: JSON-normalised (tuples become lists), plus version and code."""
    clash = [k for k in RESERVED if k in fields]
    if clash:
        raise ValueError(f"checkpoint fields may not be named {clash}: the key adds them itself")
    import vae_utils

    return json.loads(_canonical({**fields, "version": vae_utils.__version__, "code": code_fingerprint()}))


def key(fields: dict) -> str:
    """12 hex digits of sha256 over the canonical JSON of `fields` + version + code fingerprint."""
    return hashlib.sha256(_canonical(full_fields(fields)).encode()).hexdigest()[:12]


def differences(saved: dict, asked: dict) -> list[str]:
    """``"train.lr: saved 0.02, asked 0.1"`` for every differing leaf (nested keys dotted)."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
        return out
    s, a = flat(saved or {}), flat(asked or {})
    return [f"{k}: saved {s.get(k, '(absent)')}, asked {a.get(k, '(absent)')}"
            for k in [*a, *(k for k in s if k not in a)] if s.get(k) != a.get(k)]


# -- one file --------------------------------------------------------------------------------

def _clean(x, where="payload"):
    """A copy holding only types weights_only loads; tensors detached, on the CPU, compact
    (so no byte of the file is storage the checksum does not see)."""
    if isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.is_quantized:
            raise TypeError(f"{where}: only dense tensors can be checkpointed")
        return x.detach().cpu().resolve_conj().resolve_neg().clone(memory_format=torch.contiguous_format)
    if isinstance(x, dict):
        return (collections.OrderedDict if isinstance(x, collections.OrderedDict) else dict)(
            (_clean(k, where), _clean(v, f"{where}[{k!r}]")) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return (list if isinstance(x, list) else tuple)(_clean(v, f"{where}[{i}]") for i, v in enumerate(x))
    for t, like in ((bool, bool), (int, numbers.Integral), (float, numbers.Real), (str, str)):
        if isinstance(x, like):
            return t(x)
    if x is None:
        return x
    raise TypeError(f"{where} = {type(x).__name__}: checkpoints hold dicts, lists, tuples, "
                    "tensors, str, int, float, bool and None")


def checksum(x) -> str:
    """sha256 over a nested structure: every tensor's dtype, shape, requires_grad and bytes,
    every other leaf's type and value; dict keys sorted; each item length-prefixed."""
    h = hashlib.sha256()

    def put(tag: bytes, data: bytes = b""):
        h.update(tag + len(data).to_bytes(8, "little") + data)

    def walk(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            put(b"T", f"{t.dtype}|{tuple(x.shape)}|{x.requires_grad}".encode())
            put(b"B", t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            put(b"D", str(len(x)).encode())
            for k in sorted(x, key=lambda k: (type(k).__name__, repr(k))):
                walk(k)
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            put(b"L" if isinstance(x, list) else b"U", str(len(x)).encode())
            for v in x:
                walk(v)
        elif isinstance(x, float):
            put(b"F", x.hex().encode())
        elif x is None or isinstance(x, (bool, int, str)):
            put(type(x).__name__[:1].encode(), repr(x).encode())
        else:
            raise TypeError(f"cannot checksum a {type(x).__name__}")
    walk(x)
    return h.hexdigest()


def save(path, payload: dict, fields: dict | None = None) -> Path:
    """Write `payload` and the settings `fields` it was made with (JSON-like) to `path`,
    atomically, with format and checksum; return the path. Tensors are saved detached, on
    the CPU and compact: a view is saved as itself, not with the storage it is a view of."""
    fields = None if fields is None else json.loads(_canonical(fields))
    record = {"kind": KIND, "format": FORMAT, "fields": fields, "payload": _clean(payload)}
    record["checksum"] = checksum(record)
    return atomic_write(path, lambda f: torch.save(record, f))


def read_record(path, map_location="cpu", verify=True, mmap=False) -> dict:
    """The record in `path` (a format-1 file is returned as is; only format 2 is verified)."""
    path = Path(path)
    delete = f"delete {path} (or move it away) and train again"
    try:
        record = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):
        raise  # the file may be fine: the reader must fix access, not delete it
    except Exception as e:
        why = "it is empty" if path.is_file() and path.stat().st_size == 0 else \
            f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        raise CheckpointUnreadable(f"{path} is not a readable checkpoint ({why}); {delete}") from None
    if not isinstance(record, dict) or record.get("format") not in (1, FORMAT) \
            or (record.get("format") == FORMAT and record.get("kind") != KIND):
        fmt = record.get("format") if isinstance(record, dict) else None
        raise CheckpointUnreadable(f"{path} is not a vae_utils checkpoint of format {FORMAT} "
                                   f"(format {fmt!r}); {delete}")
    if verify and record["format"] == FORMAT:
        try:
            ok = checksum({k: v for k, v in record.items() if k != "checksum"}) == record.get("checksum")
        except Exception as e:
            raise CheckpointUnreadable(f"{path} holds something unexpected ({e}); {delete}") from None
        if not ok:
            raise CheckpointCorrupt(f"{path} is corrupt: its contents do not match their checksum "
                                    f"(a damaged disk or copy?); {delete}")
    return record


def load(path, map_location="cpu", fields: dict | None = None) -> dict:
    """The payload saved in `path`, verified against its checksum. If `fields` is given (as
    returned by `full_fields`), raise CheckpointMismatch unless it was saved with exactly them."""
    record = read_record(path, map_location)
    if record["format"] != FORMAT:
        raise CheckpointUnreadable(f"{path} is a format-1 checkpoint of an older vae_utils, which "
                                   "this version does not load; it is left as it is")
    if fields is not None and json.dumps(record["fields"], sort_keys=True) != json.dumps(fields, sort_keys=True):
        diffs = differences(record["fields"], fields) or ["(fields differ)"]
        raise CheckpointMismatch(f"{path} was saved with other settings:\n  " + "\n  ".join(diffs))
    return record["payload"]
