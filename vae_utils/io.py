"""Files that are never half-written: write beside the target, then rename over it.

A reader of `path` sees the old file or the new one, never a mix, even if the writer is
interrupted (Ctrl-C, a full disk, a killed kernel): the partial file is removed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

Content = Union[bytes, Callable[[object], None]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, content: Content) -> Path:
    """Write `content` to `path` atomically; return the path.

    content: the bytes to write, or a function that writes to the open binary file it is
    given (e.g. ``lambda f: torch.save(obj, f)``). The file gets the permissions a plain
    ``open(path, "w")`` would give (0o666 less the umask: usually readable by everyone),
    not mkstemp's private 0o600, so a cache shared between users stays readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
