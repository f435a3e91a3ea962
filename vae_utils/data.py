"""Data sets: MNIST and Frey Face, held whole in memory as tensors, and their minibatches.

The files come through `vae_utils.download` (mirrors, checksums, the cache).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .download import FREY, MNIST, DataError, fetch


def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """Parse an IDX file (MNIST's format): a big-endian header, then uint8 values."""
    raw = path.read_bytes()
    ndim = len(shape)
    header = np.frombuffer(raw, ">i4", count=1 + ndim)
    if header[0] != magic or tuple(header[1:]) != shape:
        raise DataError(f"{path} has header {header.tolist()}, expected {[magic, *shape]}")
    return np.frombuffer(raw, np.uint8, offset=4 * (1 + ndim)).reshape(shape)


def _state(t: torch.Tensor | None):
    """What changes when a tensor is modified in place or re-pointed (for Split.fingerprint)."""
    return None if t is None else (t._version, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)


def _bytes(t: torch.Tensor) -> np.ndarray:
    """The raw bytes of t in row-major order, as a uint8 array (no copy if t is a contiguous
    CPU tensor)."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


@dataclass
class Split:
    """One split of a data set, held whole as tensors (on the GPU if asked).

    x: (N, D) float32 pixels in [0, 1], images flattened row by row.
    y: (N,) int64 labels, or None.
    dynamic: if True, `minibatches` draws binary pixels x ~ Bernoulli(x) afresh each time.
    index: (N,) int64, each row's position in its source file (MNIST: its row in the IDX file;
        Frey Face: its frame number, 0..1964), or None.

    split[idx] is the Split of some rows: idx a slice, a 1-D tensor (or list) of row numbers,
    or a boolean mask with one entry per row; y and index are taken alike.
    """

    x: torch.Tensor
    y: torch.Tensor | None
    image_shape: tuple[int, int]
    dynamic: bool = False
    index: torch.Tensor | None = None
    _memo: tuple | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.x.shape[0]

    def images(self, n: int | None = None) -> torch.Tensor:
        """The first n examples as (n, H, W) images."""
        return self.x[:n].reshape(-1, *self.image_shape)

    def __getitem__(self, idx) -> Split:
        if isinstance(idx, numbers.Integral) or (torch.is_tensor(idx) and idx.dim() == 0):
            i = int(idx)
            raise TypeError(f"split[{i}] would be one example, not a Split: use split[{i}:{i + 1}] "
                            f"for a Split of that row, or split.x[{i}] for its pixels")
        if not isinstance(idx, slice):
            idx = torch.as_tensor(idx, device=self.x.device)
            if idx.dim() != 1:
                raise IndexError(f"split[idx] takes a 1-D idx (row numbers or a boolean mask); "
                                 f"got shape {tuple(idx.shape)}")
            if idx.dtype == torch.bool and len(idx) != len(self):
                raise IndexError(f"a boolean mask needs one entry per row: {len(idx)} entries "
                                 f"for {len(self)} rows")
            if idx.dtype != torch.bool:  # row numbers; [] comes as float, uint8 would be a mask
                if idx.numel() and (idx.is_floating_point() or idx.is_complex()):
                    raise TypeError(f"split[idx] takes row numbers (integers) or a boolean mask, "
                                    f"not {idx.dtype} values: convert with idx.long()")
                idx = idx.long()
        take = lambda t: None if t is None else t[idx if isinstance(idx, slice) else idx.to(t.device)]
        return Split(take(self.x), take(self.y), self.image_shape, self.dynamic, take(self.index))

    def to(self, device) -> Split:
        """The same split with its tensors on `device`."""
        move = lambda t: None if t is None else t.to(device)
        return dataclasses.replace(self, x=move(self.x), y=move(self.y), index=move(self.index))

    def fingerprint(self) -> str:
        """A short hex digest of the data: sha256 over x's shape, dtype and bytes, the dynamic
        flag, and y's shape, dtype and bytes if there are labels. Equal data give equal
        fingerprints, whatever the device; image_shape and index are not part of it.

        The result is remembered while x and y are the same tensors, unchanged: an in-place
        change bumps a tensor's version counter and forces a new digest. (Writes that bypass
        autograd's counter, through `.data` or a NumPy view, are not seen.)
        """
        key = (bool(self.dynamic), _state(self.x), _state(self.y))
        if self._memo is not None:
            refs, memo_key, digest = self._memo
            same = all((r() if r else None) is t for r, t in zip(refs, (self.x, self.y)))
            if same and memo_key == key:
                return digest
        h = hashlib.sha256(f"x {tuple(self.x.shape)} {self.x.dtype} dynamic={key[0]}".encode())
        h.update(_bytes(self.x))
        if self.y is not None:
            h.update(f" y {tuple(self.y.shape)} {self.y.dtype}".encode())
            h.update(_bytes(self.y))
        digest = h.hexdigest()[:16]
        refs = tuple(None if t is None else weakref.ref(t) for t in (self.x, self.y))
        self._memo = (refs, key, digest)
        return digest

    def __getstate__(self):  # pickle and deepcopy: without the memo (weak references)
        return {**self.__dict__, "_memo": None}


BINARIZE = ("none", "static", "dynamic")


def load_mnist(binarize: str = "none", validation: int = 0, device="cpu", seed: int = 0,
               progress: bool = True) -> dict[str, Split]:
    """MNIST as {"train", "test"} (and "valid" if validation > 0), 784 pixels in [0, 1].

    binarize: "none" keeps grey levels (the paper does not say how it binarized MNIST for its
        Bernoulli decoder; on grey levels that decoder's likelihood is not normalised); "static" draws binary
        pixels x ~ Bernoulli(grey) once with `seed`; "dynamic" redraws the training pixels at
        every minibatch (Burda et al.), while valid and test are binarized once with `seed`.
    validation: the last `validation` training images become the "valid" split.
    device: where the tensors live; "cuda" puts the whole set on the GPU (about 220 MB of float32).
    Each split's `index` holds its rows' positions in the IDX file they come from.
    """
    if binarize not in BINARIZE:
        raise ValueError(f"binarize={binarize!r}; choose one of {BINARIZE}")
    if (isinstance(validation, bool) or not isinstance(validation, numbers.Integral)
            or not 0 <= validation < 60000):
        raise ValueError(f"validation={validation!r} must be an integer in [0, 60000)")
    arrays = {}
    for key, res in MNIST.items():
        n = 60000 if key.startswith("train") else 10000
        images = key.endswith("images")
        arrays[key] = _read_idx(fetch(res, progress), 2051 if images else 2049,
                                (n, 28, 28) if images else (n,))

    def whole(part: str) -> Split:
        a = arrays[f"{part}_images"]
        x = torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)
        y = torch.from_numpy(arrays[f"{part}_labels"].astype(np.int64))
        return Split(x, y, (28, 28), index=torch.arange(len(a)))

    train, cut = whole("train"), 60000 - validation
    parts = {"train": train[:cut], "valid": train[cut:] if validation else None,
             "test": whole("test")}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("train", "valid", "test"):  # this order fixes the draws of `gen`
        if parts[name] is None:
            continue
        dynamic = binarize == "dynamic" and name == "train"
        split = dataclasses.replace(parts[name], dynamic=dynamic)
        if binarize != "none" and not dynamic:
            split = dataclasses.replace(split, x=torch.bernoulli(split.x, generator=gen))
        out[name] = split.to(device)
    return out


def load_frey(test: int = 200, device="cpu", seed: int = 0, progress: bool = True) -> dict[str, Split]:
    """Frey Face: 1965 frames of 28x20 pixels in [0, 1], as {"train", "test"}.

    The `test` frames are drawn at random (with `seed`). The frames are a video, so neighbours
    look alike and a random test frame usually has a near-copy among the training frames: the
    test bound is higher than on a block of unseen video (notebook 06 measures how much; the
    paper does not say how it split). test=0 puts every frame in "train", to cut any split.
    Each split's `index` holds its frames' numbers in the video (0..1964).
    """
    import scipy.io

    if isinstance(test, bool) or not isinstance(test, numbers.Integral) or not 0 <= test < 1965:
        raise ValueError(f"test={test!r} must be an integer in [0, 1965)")
    ff = scipy.io.loadmat(fetch(FREY, progress))["ff"]  # (560, 1965) uint8, a frame a column
    if ff.shape != (560, 1965):
        raise DataError(f"frey_rawface.mat holds ff of shape {ff.shape}, expected (560, 1965)")
    x = torch.from_numpy(ff.T.astype(np.float32) / 255.0)
    every = Split(x, None, (28, 20), index=torch.arange(len(x)))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    out = {"train": every[perm[test:]].to(device)}
    if test:
        out["test"] = every[perm[:test]].to(device)
    return out


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def check_data(model, data: Split) -> None:
    """Fail early, and clearly, on data that do not fit the model (a models.VAE): device,
    dtype, shape, finite values, and pixels in [0, 1] for a Bernoulli decoder."""
    x, c = data.x, model.config
    p = next(model.parameters())
    if x.device != p.device or x.dtype != p.dtype:
        raise ValueError(f"the data are {x.dtype} on {x.device} but the model is {p.dtype} on {p.device}; "
                         f"move one to the other, e.g. model.to(data.x.device, data.x.dtype)")
    if x.ndim != 2 or x.shape[1] != c.x_dim:
        raise ValueError(f"data have shape {tuple(x.shape)} but the model expects (N, {c.x_dim}); "
                         "flatten images to rows, or build the model with VAEConfig(x_dim=...)")
    # one pass over the data: min and max propagate NaN, and an infinity is the min or the max
    lo, hi = (v.item() for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("data contain NaN or infinite values; clean them before training")
    if c.decoder == "bernoulli" and (lo < 0 or hi > 1):
        raise ValueError(f"a Bernoulli decoder needs pixels in [0, 1], got [{lo:g}, {hi:g}]; "
                         "scale the data (e.g. x / 255)")


def minibatches(split: Split, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True, with_index: bool = False):
    """An iterator over minibatches of split.x, taken from the in-memory tensor by a row gather
    (no per-example Python work). Every row comes once per pass; the last batch may be short.
    with_index: yield (rows' indices, batch) pairs (MCEM keeps a chain per row).

    With split.dynamic, each batch is binarized afresh: x ~ Bernoulli(grey levels).
    `generator` (for the order and the binary draws) must live on the data's device.
    Bad arguments raise at the call, before any batch.
    """
    if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r}: it must be an integer >= 1, the number of "
                         "examples per minibatch (e.g. 100)")
    dev = split.x.device
    if generator is not None and not _same_device(generator.device, dev):
        raise ValueError(
            f"the generator is on {generator.device} but the data are on {dev}: make the "
            f"generator there, torch.Generator(device={str(dev)!r}).manual_seed(seed), or move "
            f"the data with split.to({str(generator.device)!r})")
    return _batches(split, int(batch_size), generator, shuffle, with_index)


def _batches(split: Split, batch_size: int, generator, shuffle: bool, with_index: bool):
    n, dev = len(split), split.x.device
    order = torch.randperm(n, generator=generator, device=dev) if shuffle else torch.arange(n, device=dev)
    for idx in order.split(batch_size):
        xb = split.x.index_select(0, idx)  # a plain row gather: cheaper than x[idx]
        xb = draw_binary(xb, generator) if split.dynamic else xb
        yield (idx, xb) if with_index else xb


def draw_binary(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x ~ Bernoulli(p), elementwise, as 1[u < p] with u ~ U(0, 1).

    Cheaper than torch.bernoulli(p) on a CPU, and there the very same values from the same
    generator: torch.bernoulli compares the same uniforms.
    """
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return (u < p).to(p.dtype)
