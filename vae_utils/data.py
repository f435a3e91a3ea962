"""Data: MNIST and Frey Face, downloaded from public mirrors, verified, cached, held in memory.

Every file is checked by SHA-256 (for MNIST, of the decompressed bytes, which all mirrors
share) and written to the cache through a temporary file and a rename, so the cache never
holds a half-written or corrupt file. A good cached file is never downloaded again.

Settings (environment variables):
    VAE_UTILS_DATA     the cache directory (default: $XDG_CACHE_HOME/vae_utils, else
                       ~/.cache/vae_utils).
    VAE_UTILS_MIRRORS  space-separated base URLs that replace the public mirrors. Each serves
                       ``mnist/<file>`` and ``frey/<file>``, e.g. ``file:///path/to/shared/data``
                       or ``http://127.0.0.1:8000``. Tests and CI use it; users need not.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import numbers
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(RuntimeError):
    """A data file could not be downloaded, or what arrived is not the expected file."""


@dataclass(frozen=True)
class Resource:
    name: str  # the file's name as the mirrors serve it
    folder: str  # cache sub-folder, and the path under a VAE_UTILS_MIRRORS base
    sha256: str  # of the bytes we keep: decompressed for a .gz file
    size: int  # bytes we keep
    urls: tuple[str, ...]  # the public locations, tried in order

    @property
    def stored_name(self) -> str:
        return self.name[:-3] if self.name.endswith(".gz") else self.name


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",  # the original; often answers 403
)


def _mnist(name: str, sha256: str, size: int) -> Resource:
    return Resource(name, "mnist", sha256, size, tuple(m + name for m in MNIST_MIRRORS))


MNIST = {
    "train_images": _mnist("train-images-idx3-ubyte.gz",
                           "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    "train_labels": _mnist("train-labels-idx1-ubyte.gz",
                           "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    "test_images": _mnist("t10k-images-idx3-ubyte.gz",
                          "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    "test_labels": _mnist("t10k-labels-idx1-ubyte.gz",
                          "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
}
FREY = Resource("frey_rawface.mat", "frey",
                "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64", 1100584,
                ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",))


def data_dir() -> Path:
    """Where downloads are cached: $VAE_UTILS_DATA, else the user's cache directory."""
    if os.environ.get("VAE_UTILS_DATA"):
        return Path(os.environ["VAE_UTILS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vae_utils"


def urls_for(res: Resource) -> list[str]:
    """The URLs to try for a resource: $VAE_UTILS_MIRRORS if set, else the public ones."""
    bases = os.environ.get("VAE_UTILS_MIRRORS", "").split()
    if bases:
        return [f"{b.rstrip('/')}/{res.folder}/{res.name}" for b in bases]
    return list(res.urls)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in head


def _decode(res: Resource, raw: bytes) -> bytes:
    """Turn downloaded bytes into the bytes we keep, or raise DataError saying what is wrong."""
    if _looks_like_html(raw):
        raise DataError(f"the server sent an HTML page instead of {res.name} "
                        "(an error or login page, not data)")
    if res.name.endswith(".gz"):
        if raw[:2] != b"\x1f\x8b":
            raise DataError(f"{res.name} is not a gzip file (it starts with {raw[:8]!r})")
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{res.name} is truncated or corrupt: gzip says {e}") from None
    if len(raw) != res.size or _sha256(raw) != res.sha256:
        raise DataError(f"{res.stored_name} has the wrong content: {len(raw)} bytes with sha256 "
                        f"{_sha256(raw)}, expected {res.size} bytes with sha256 {res.sha256}")
    return raw


def _download(url: str, progress: bool) -> bytes:
    from tqdm.auto import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "vae_utils (AEVB tutorial)"})
    with urllib.request.urlopen(req, timeout=60) as r:
        total = int(r.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  disable=not progress, leave=False) as bar:
            while chunk := r.read(1 << 20):
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    if total is not None and len(data) != total:
        raise DataError(f"download of {url} stopped after {len(data)} of {total} bytes")
    return data


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reason(e: Exception) -> str:
    """A short, readable reason for a failed download."""
    if isinstance(e, urllib.error.HTTPError):
        e.close()  # it holds the error page's open response
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


def fetch(res: Resource, progress: bool = True) -> Path:
    """Return the path of a verified local copy of `res`, downloading it if needed.

    A bad cached file (edited by hand?) is replaced only once a good copy has arrived.
    """
    path = data_dir() / res.folder / res.stored_name
    if path.is_file():
        data = path.read_bytes()
        if len(data) == res.size and _sha256(data) == res.sha256:
            return path
    errors = []
    for url in urls_for(res):
        try:
            data = _decode(res, _download(url, progress))
        except (OSError, http.client.HTTPException, ValueError, DataError) as e:
            # OSError covers URLError, HTTPError, timeouts and refused connections;
            # ValueError is a malformed URL in VAE_UTILS_MIRRORS
            errors.append(f"  {url}: {_reason(e)}")
            continue
        _atomic_write(path, data)
        return path
    expected = f"{res.size} bytes with sha256 {res.sha256}"
    if res.name.endswith(".gz"):
        expected += " once decompressed"
    raise DataError(
        f"could not get a good copy of {res.name} ({res.folder}: expected {expected}); "
        "every source failed:\n"
        + "\n".join(errors)
        + f"\nNothing was written to {path.parent}. Check your internet connection and try "
        "again; or download the file yourself from one of the URLs above and put it "
        f"(decompressed, as {res.stored_name}) in that folder; or set VAE_UTILS_MIRRORS to "
        "a mirror that serves mnist/ and frey/.")


def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """Parse an IDX file (MNIST's format): a big-endian header, then uint8 values."""
    raw = path.read_bytes()
    ndim = len(shape)
    header = np.frombuffer(raw, ">i4", count=1 + ndim)
    if header[0] != magic or tuple(header[1:]) != shape:
        raise DataError(f"{path} has header {header.tolist()}, expected {[magic, *shape]}")
    return np.frombuffer(raw, np.uint8, offset=4 * (1 + ndim)).reshape(shape)


@dataclass
class Split:
    """One split of a data set, held whole as tensors (on the GPU if asked).

    x: (N, D) float32 pixels in [0, 1], images flattened row by row.
    y: (N,) int64 labels, or None.
    dynamic: if True, `minibatches` draws binary pixels x ~ Bernoulli(x) afresh each time.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    image_shape: tuple[int, int]
    dynamic: bool = False

    def __len__(self) -> int:
        return self.x.shape[0]

    def images(self, n: int | None = None) -> torch.Tensor:
        """The first n examples as (n, H, W) images."""
        return self.x[:n].reshape(-1, *self.image_shape)


BINARIZE = ("none", "static", "dynamic")


def _split_off(x, y, n_valid):
    if not 0 <= n_valid < len(x):
        raise ValueError(f"validation={n_valid} must be in [0, {len(x)})")
    cut = len(x) - n_valid
    tail = (x[cut:], None if y is None else y[cut:])
    return (x[:cut], None if y is None else y[:cut]), tail


def load_mnist(binarize: str = "none", validation: int = 0, device="cpu", seed: int = 0,
               progress: bool = True) -> dict[str, Split]:
    """MNIST as {"train", "test"} (and "valid" if validation > 0), 784 pixels in [0, 1].

    binarize: "none" keeps grey levels (as the paper's MNIST runs do); "static" draws binary
        pixels x ~ Bernoulli(grey) once with `seed`; "dynamic" redraws the training pixels at
        every minibatch (Burda et al.), while valid and test are binarized once with `seed`.
    validation: the last `validation` training images become the "valid" split.
    device: where the tensors live; "cuda" puts the whole set on the GPU (188 MB).
    """
    if binarize not in BINARIZE:
        raise ValueError(f"binarize={binarize!r}; choose one of {BINARIZE}")
    if not isinstance(validation, numbers.Integral) or not 0 <= validation < 60000:
        raise ValueError(f"validation={validation!r} must be an integer in [0, 60000)")
    arrays = {}
    for key, res in MNIST.items():
        n = 60000 if key.startswith("train") else 10000
        images = key.endswith("images")
        arrays[key] = _read_idx(fetch(res, progress), 2051 if images else 2049,
                                (n, 28, 28) if images else (n,))
    to_x = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))
    train, valid = _split_off(to_x(arrays["train_images"]), to_y(arrays["train_labels"]), validation)
    parts = {"train": train, "test": (to_x(arrays["test_images"]), to_y(arrays["test_labels"]))}
    if validation:
        parts["valid"] = valid
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("train", "valid", "test"):
        if name not in parts:
            continue
        x, y = parts[name]
        dynamic = binarize == "dynamic" and name == "train"
        if binarize != "none" and not dynamic:
            x = torch.bernoulli(x, generator=gen)
        out[name] = Split(x.to(device), y.to(device), (28, 28), dynamic)
    return out


def load_frey(test: int = 200, device="cpu", seed: int = 0, progress: bool = True) -> dict[str, Split]:
    """Frey Face: 1965 frames of 28x20 pixels in [0, 1], as {"train", "test"}.

    The frames are a video, so neighbours look alike: the `test` frames are drawn at random
    (with `seed`) rather than cut from the end. test=0 puts every frame in "train".
    """
    import scipy.io

    if not isinstance(test, numbers.Integral) or not 0 <= test < 1965:
        raise ValueError(f"test={test!r} must be an integer in [0, 1965)")
    ff = scipy.io.loadmat(fetch(FREY, progress))["ff"]  # (560, 1965) uint8, a frame a column
    if ff.shape != (560, 1965):
        raise DataError(f"frey_rawface.mat holds ff of shape {ff.shape}, expected (560, 1965)")
    x = torch.from_numpy(ff.T.astype(np.float32) / 255.0)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    out = {"train": Split(x[perm[test:]].to(device), None, (28, 20))}
    if test:
        out["test"] = Split(x[perm[:test]].to(device), None, (28, 20))
    return out


def minibatches(split: Split, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True):
    """Yield minibatches of x by indexing the in-memory tensor: no per-example Python work.

    With split.dynamic, each batch is binarized afresh: x ~ Bernoulli(grey levels).
    `generator` must live on the same device as the data.
    """
    n = len(split)
    if not shuffle:
        order = torch.arange(n, device=split.x.device)
    else:
        order = torch.randperm(n, generator=generator, device=split.x.device)
    for idx in order.split(batch_size):
        xb = split.x.index_select(0, idx)  # a row gather: ~10x faster than x[idx] on a CPU
        yield draw_binary(xb, generator) if split.dynamic else xb


def draw_binary(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x ~ Bernoulli(p), elementwise, as 1[u < p] with u ~ U(0, 1).

    3x faster than torch.bernoulli(p) on a CPU (0.21 against 0.64 s for the 600 minibatches of
    an MNIST epoch; dynamic binarization draws every step), and on a CPU the very same values
    from the same generator: torch.bernoulli compares the same uniforms.
    """
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)
