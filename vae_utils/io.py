"""Files that are never half-written: write beside the target, then rename over it.

A reader of `path` sees the old file or the new one, never a mix, even if the writer is
interrupted (Ctrl-C, a full disk, a killed kernel): the partial file is removed.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, Union

Content = Union[bytes, Callable[[object], None]]


def atomic_write(path, content: Content) -> Path:
    """Write `content` to `path` atomically; return the path.

    content: the bytes to write, or a function that writes to the open binary file it is
    given (e.g. ``lambda f: torch.save(obj, f)``). The temporary file is created with a plain
    exclusive open, so it gets the permissions any new file gets (0o666 less the umask:
    usually readable by everyone), not mkstemp's private 0o600: a cache shared between users
    stays readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        with open(tmp, "xb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
