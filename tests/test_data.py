"""Tests of vae_utils.data: the loaders, their options, Split (slicing, index, fingerprint) and
minibatches. (The download layer is tested in test_download.py.)

The real MNIST and Frey Face files come from the offline copy in shared/data beside the
repository, through VAE_UTILS_MIRRORS=file://...; nothing here touches the network.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_utils import data
from vae_utils.data import DataError, Split, load_frey, load_mnist, minibatches

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NO_SHARED = f"no offline copy of MNIST and Frey Face at {SHARED} (shared/data beside the repo)"
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir() or not (SHARED / "frey").is_dir(), reason=NO_SHARED)


def offline(mp: pytest.MonkeyPatch, cache: Path, mirror: str) -> None:
    """Point the cache at `cache` and the only mirror at `mirror` (a file:// URL)."""
    mp.setenv("VAE_UTILS_DATA", str(cache))
    mp.setenv("VAE_UTILS_MIRRORS", mirror)


def is_binary(x: torch.Tensor) -> bool:
    """Only 0s and 1s, and both of them."""
    return bool(((x == 0) | (x == 1)).all() and x.any() and not x.all())


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache per test, and a mirror that does not exist: a test that downloads
    without saying so fails with DataError."""
    offline(monkeypatch, tmp_path / "cache", (tmp_path / "nowhere").as_uri())
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real MNIST, loaded once from shared/data into a module cache: (splits, cache)."""
    if not SHARED.is_dir():
        pytest.skip(NO_SHARED)
    cache = tmp_path_factory.mktemp("mnist_cache")
    with pytest.MonkeyPatch.context() as mp:
        offline(mp, cache, SHARED.as_uri())
        return load_mnist(progress=False), cache


@pytest.fixture
def mnist_cache(real, monkeypatch, tmp_path):
    """Point the loaders at the module's filled MNIST cache, with no mirror that works: the
    loads of a test that uses it must come from the cache."""
    offline(monkeypatch, real[1], (tmp_path / "nowhere").as_uri())
    return real


# ------------------------------------------------------------------------------- real data

@needs_shared
def test_mnist_loads_with_labels_and_index(real):
    """MNIST loads as 60000/10000 images of 28x28 grey levels in [0, 1] with their labels,
    and each row's index is its row in the IDX file."""
    splits, cache = real
    assert set(splits) == {"train", "test"}
    train, test = splits["train"], splits["test"]
    assert train.x.shape == (60000, 784) and test.x.shape == (10000, 784)
    assert train.x.dtype == torch.float32 and train.images(3).shape == (3, 28, 28)
    assert 0 <= train.x.min() and train.x.max() == 1
    assert ((train.x > 0) & (train.x < 1)).any()  # grey levels kept
    assert train.y.dtype == torch.int64 and train.y.shape == (60000,) and test.y.shape == (10000,)
    assert train.y[:3].tolist() == [5, 0, 4] and test.y[:3].tolist() == [7, 2, 1]
    assert torch.bincount(train.y).tolist()[:2] == [5923, 6742]  # per-digit counts as published
    assert not train.dynamic and not test.dynamic
    assert torch.equal(train.index, torch.arange(60000)) and torch.equal(test.index, torch.arange(10000))
    raw = np.frombuffer((cache / "mnist" / "t10k-images-idx3-ubyte").read_bytes(), np.uint8, offset=16)
    row = int(test.index[1234])
    assert torch.equal(test.x[1234], torch.from_numpy(raw[784 * row:784 * (row + 1)] / 255.0).float())


@needs_shared
def test_second_mnist_load_uses_the_cache(mnist_cache):
    """A second load reads the verified cache: it works with no usable mirror at all."""
    first = mnist_cache[0]
    again = load_mnist(progress=False)
    assert torch.equal(again["test"].x, first["test"].x)
    assert torch.equal(again["train"].y, first["train"].y)


@needs_shared
def test_frey_face_loads_with_frame_numbers(cache, monkeypatch):
    """Frey Face: 1965 frames of 28x20 pixels in [0, 1], 200 of them drawn at random for test;
    `index` gives each row's frame number, so the frames can be found in the .mat file."""
    import scipy.io

    monkeypatch.setenv("VAE_UTILS_MIRRORS", SHARED.as_uri())
    splits = load_frey(progress=False)
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 1965 and len(test) == 200
    assert train.x.shape[1] == 560 and test.images().shape == (200, 28, 20)
    assert train.y is None and 0 <= train.x.min() and train.x.max() <= 1
    frames = torch.cat([train.index, test.index])
    assert torch.equal(frames.sort().values, torch.arange(1965))  # a partition of the video
    assert not torch.equal(test.index, test.index.sort().values)  # drawn at random, not cut
    ff = torch.from_numpy(scipy.io.loadmat(SHARED / "frey" / "frey_rawface.mat")["ff"].T / 255.0).float()
    assert torch.equal(ff[train.index], train.x) and torch.equal(ff[test.index], test.x)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", (cache.parent / "nowhere").as_uri())
    everything = load_frey(test=0, progress=False)  # from the cache
    assert set(everything) == {"train"} and len(everything["train"]) == 1965
    assert torch.equal(ff[everything["train"].index], everything["train"].x)


# --------------------------------------------------------------------------- load_mnist options

@needs_shared
def test_static_binarization_is_binary_and_reproducible(mnist_cache):
    """binarize="static" gives only 0/1 pixels, about as many ones as the grey mean, and the
    same pixels again for the same seed: the draws of torch.bernoulli with a generator seeded
    `seed`, train then test (so the binary data set never changes between versions)."""
    grey = mnist_cache[0]
    a, b = load_mnist("static", seed=0, progress=False), load_mnist("static", seed=0, progress=False)
    gen = torch.Generator().manual_seed(0)
    for name in ("train", "test"):
        assert is_binary(a[name].x)
        assert not a[name].dynamic
        assert torch.equal(a[name].x, b[name].x) and torch.equal(a[name].y, grey[name].y)
        assert torch.equal(a[name].x, torch.bernoulli(grey[name].x, generator=gen))
        assert torch.equal(a[name].index, grey[name].index)
    x, g = a["test"].x, grey["test"].x  # x ~ Bernoulli(g): check it on the test images
    assert abs(x.mean() - g.mean()) < 0.002
    assert not x[g == 0].any() and x[g == 1].all()


@needs_shared
def test_dynamic_binarization_and_validation_split(mnist_cache):
    """binarize="dynamic" with validation=10000: 50000/10000/10000; train keeps its grey levels
    and is marked dynamic, valid and test are binary; minibatches of train are binary and
    redrawn on every pass, while valid stays fixed. valid's index says it is the last 10000
    rows of the training file."""
    grey = mnist_cache[0]
    d = load_mnist("dynamic", validation=10000, seed=0, progress=False)
    assert {k: len(v) for k, v in d.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    assert d["train"].dynamic and not d["valid"].dynamic and not d["test"].dynamic
    assert torch.equal(d["train"].x, grey["train"].x[:50000])
    assert torch.equal(d["valid"].y, grey["train"].y[50000:])
    assert torch.equal(d["valid"].index, torch.arange(50000, 60000))
    assert torch.equal(d["train"].index, torch.arange(50000))
    gen = torch.Generator().manual_seed(0)
    for name, g in (("valid", grey["train"].x[50000:]), ("test", grey["test"].x)):
        assert is_binary(d[name].x)
        assert torch.equal(d[name].x, torch.bernoulli(g, generator=gen))  # valid = the last 10000
    one = torch.cat(list(minibatches(d["train"], 25000, gen, shuffle=False)))
    two = torch.cat(list(minibatches(d["train"], 25000, gen, shuffle=False)))
    assert is_binary(one) and one.shape == (50000, 784)
    assert not torch.equal(one, two)
    assert abs(one.mean() - d["train"].x.mean()) < 0.002
    valid = [torch.cat(list(minibatches(d["valid"], 4000, gen, shuffle=False))) for _ in range(2)]
    assert torch.equal(valid[0], valid[1]) and torch.equal(valid[0], d["valid"].x)


@pytest.mark.parametrize("kwargs", [
    dict(binarize="yes"), dict(binarize=None), dict(validation=-1), dict(validation=60000),
    dict(validation=2.5), dict(validation=True)], ids=str)
def test_invalid_mnist_options_raise_value_error(kwargs):
    """Bad binarize or validation values raise ValueError at once, naming the option, before
    any download (the mirror here does not exist: a download would raise DataError)."""
    with pytest.raises(ValueError, match="binarize" if "binarize" in kwargs else "validation"):
        load_mnist(progress=False, **kwargs)


@pytest.mark.parametrize("test", [-1, 1965, 2.0, True])
def test_invalid_frey_test_size_raises_value_error(test):
    """load_frey rejects a test size that is not an integer in [0, 1965) before any download."""
    with pytest.raises(ValueError, match=r"test=.* must be an integer in \[0, 1965\)"):
        load_frey(test=test, progress=False)


def test_a_load_with_no_usable_mirror_raises_data_error():
    """The autouse mirror does not exist: a real load says so with a DataError."""
    with pytest.raises(DataError, match="every source failed"):
        load_frey(progress=False)


# ----------------------------------------------------------------------------------- Split

def tagged(n: int, labels: bool = False, dynamic: bool = False) -> Split:
    """A split whose row i holds the value i everywhere (and label i % 10, and index 100 + i),
    so a batch or a slice tells which rows it took."""
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 6)
    y = torch.arange(n) % 10 if labels else None
    return Split(x, y, (2, 3), dynamic, index=100 + torch.arange(n))


@pytest.mark.parametrize("idx, rows", [
    (slice(2, 9, 3), [2, 5, 8]),
    (slice(None), list(range(12))),
    (torch.tensor([7, 0, 7]), [7, 0, 7]),
    ([11, 3], [11, 3]),
    (np.array([4, 1]), [4, 1]),
    (torch.tensor([1, 1], dtype=torch.uint8), [1, 1]),  # row numbers, not a mask
    (torch.arange(12) % 4 == 1, [1, 5, 9]),
    (torch.tensor([], dtype=torch.long), []),
    ([], []),
], ids=["slice", "all", "int-tensor", "list", "numpy", "uint8", "bool-mask", "empty-tensor", "empty-list"])
def test_split_slicing_takes_rows_with_labels_and_index(idx, rows):
    """split[idx] is a Split of those rows: x, y and index taken alike, image_shape and the
    dynamic flag kept."""
    for split in (tagged(12, labels=True, dynamic=True), tagged(12)):
        part = split[idx]
        assert isinstance(part, Split) and len(part) == len(rows)
        assert part.x[:, 0].tolist() == rows and part.x.shape[1] == 6
        assert part.index.tolist() == [100 + r for r in rows]
        assert part.y is None if split.y is None else part.y.tolist() == [r % 10 for r in rows]
        assert part.image_shape == (2, 3) and part.dynamic == split.dynamic
        assert part.images().shape == (len(rows), 2, 3)


def test_split_slicing_without_index_or_labels():
    """A Split made without index (or labels) slices to one without them."""
    part = Split(torch.ones(5, 2), None, (1, 2))[1:3]
    assert part.index is None and part.y is None and len(part) == 2


@pytest.mark.parametrize("idx, error, says", [
    (3, TypeError, "split[3] would be one example, not a Split: use split[3:4]"),
    (torch.tensor(3), TypeError, "use split[3:4]"),
    (torch.tensor([0.0, 1.0]), TypeError, "not torch.float32 values: convert with idx.long()"),
    (torch.ones(2, 2, dtype=torch.long), IndexError, "1-D idx"),
    (torch.ones(5, dtype=torch.bool), IndexError, "one entry per row: 5 entries for 12 rows"),
], ids=["int", "0-d-tensor", "float", "2-d", "short-mask"])
def test_split_slicing_rejects_bad_indices_clearly(idx, error, says):
    """What split[idx] cannot take is refused with a message that says why and what to do."""
    with pytest.raises(error) as e:
        tagged(12)[idx]
    assert says in str(e.value)


def test_split_to_moves_every_tensor():
    """split.to(device) keeps the rest and moves x, y and index."""
    moved = tagged(4, labels=True, dynamic=True).to("cpu")
    assert moved.dynamic and moved.image_shape == (2, 3) and moved.index.tolist() == [100, 101, 102, 103]


# ----------------------------------------------------------------------------- fingerprint

def test_fingerprint_is_equal_for_equal_data_and_short_hex():
    """Equal content gives the same short hex fingerprint, whatever the tensors' memory
    layout, and whatever image_shape or index say."""
    a = tagged(20, labels=True)
    fp = a.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    b = Split(a.x.clone(), a.y.clone(), (3, 2), index=None)
    assert b.fingerprint() == fp
    strided = Split(torch.zeros(20, 12)[:, ::2], a.y.clone(), (2, 3))  # not contiguous
    strided.x.copy_(a.x)
    assert not strided.x.is_contiguous() and strided.fingerprint() == fp
    assert a[5:10].fingerprint() == Split(a.x[5:10].clone(), a.y[5:10].clone(), (2, 3)).fingerprint()


@pytest.mark.parametrize("change", [
    lambda s: Split(torch.where(torch.arange(120).view(20, 6) == 20, 0.5, s.x), s.y, s.image_shape),
    lambda s: Split(s.x, (s.y + 1) % 10, s.image_shape),
    lambda s: Split(s.x, None, s.image_shape),
    lambda s: Split(s.x, s.y, s.image_shape, dynamic=True),
    lambda s: Split(s.x.double(), s.y, s.image_shape),
    lambda s: Split(s.x.reshape(40, 3), s.y, s.image_shape),
    lambda s: Split(s.x, s.y.int(), s.image_shape),
    lambda s: s[1:],
], ids=["one-pixel", "labels", "no-labels", "dynamic", "dtype", "shape", "label-dtype", "rows"])
def test_fingerprint_differs_for_different_data(change):
    """Any change of pixels, labels, dtype, shape or the dynamic flag changes the fingerprint."""
    s = tagged(20, labels=True)
    assert change(s).fingerprint() != s.fingerprint()


def test_fingerprint_is_remembered_until_the_data_change(monkeypatch):
    """A second call on the unchanged split hashes nothing; an in-place edit of x or y, or a
    new tensor put in their place, is noticed."""
    s = tagged(20, labels=True)
    hashed = []
    real_bytes = data._bytes
    monkeypatch.setattr(data, "_bytes", lambda t: hashed.append(t.shape) or real_bytes(t))
    first = s.fingerprint()
    assert len(hashed) == 2  # x and y
    assert s.fingerprint() == first and len(hashed) == 2  # remembered
    s.x[3, 1] += 1  # in place
    second = s.fingerprint()
    assert second != first and len(hashed) == 4
    s.x[3, 1] -= 1
    assert s.fingerprint() == first
    s.y.add_(1)
    assert s.fingerprint() != first
    s.y = s.y.sub(1)  # a new tensor, equal to the original labels
    assert s.fingerprint() == first
    s.dynamic = True
    assert s.fingerprint() != first


def test_a_fingerprinted_split_can_be_copied_and_pickled():
    """The remembered fingerprint does not stop deepcopy or pickle (torch.save) of a Split."""
    import copy
    import pickle

    s = tagged(8, labels=True)
    fp = s.fingerprint()
    for twin in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert torch.equal(twin.x, s.x) and twin.fingerprint() == fp


# ------------------------------------------------------------------------------- minibatches

def test_minibatches_cover_every_row_once_per_epoch():
    """Each epoch yields every row exactly once (last batch short), in a new order each epoch."""
    split, gen = tagged(103), torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        batches = list(minibatches(split, 10, gen))
        assert [len(b) for b in batches] == [10] * 10 + [3]
        rows = torch.cat(batches)[:, 0].long()
        assert sorted(rows.tolist()) == list(range(103))
        epochs.append(rows)
    assert not torch.equal(epochs[0], epochs[1])
    in_order = torch.cat(list(minibatches(split, 10, shuffle=False)))
    assert torch.equal(in_order, split.x)


def test_minibatches_are_reproducible_with_a_seed():
    """The same seed gives the same batches; another seed gives another order."""
    split = tagged(50)
    run = lambda seed: [b[:, 0].tolist() for b in minibatches(split, 8, torch.Generator().manual_seed(seed))]
    assert run(1) == run(1) and run(1) != run(2)


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, True, "10", None])
def test_minibatches_reject_a_bad_batch_size_at_the_call(batch_size):
    """batch_size must be an integer >= 1; the error comes at the call (not at the first
    batch) and names the argument and what it must be."""
    with pytest.raises(ValueError, match=r"batch_size=.*: it must be an integer >= 1"):
        minibatches(tagged(10), batch_size)


def test_minibatches_reject_a_generator_on_another_device():
    """A generator on another device than the data is refused at the call, naming both
    devices and both fixes. (A stand-in generator on cuda:0: no GPU is needed.)"""
    class CudaGenerator:
        device = torch.device("cuda", 0)

    with pytest.raises(ValueError) as e:
        minibatches(tagged(10), 4, CudaGenerator())
    msg = str(e.value)
    assert "the generator is on cuda:0 but the data are on cpu" in msg
    assert "torch.Generator(device='cpu')" in msg and "split.to('cuda:0')" in msg


def test_draw_binary_is_bernoulli_of_the_grey_levels():
    """draw_binary(p) is 0/1, has mean p (within 4 standard errors), and follows its seed."""
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(40_000, 1)
    x = data.draw_binary(p, torch.Generator().manual_seed(0))
    assert x.dtype == p.dtype and set(x.unique().tolist()) <= {0.0, 1.0}
    se = (p[0] * (1 - p[0]) / len(p)).sqrt()
    assert ((x.mean(0) - p[0]).abs() <= 4 * se).all()  # 0 and 1 are exact: se = 0 there
    again = data.draw_binary(p, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    # on a CPU, bit for bit the draws of torch.bernoulli: no notebook's dynamic pixels changed
    assert torch.equal(x, torch.bernoulli(p, generator=torch.Generator().manual_seed(0)))


def test_minibatches_with_index_give_the_rows_they_hold():
    from vae_utils.data import Split, minibatches

    x = torch.arange(30.0).reshape(10, 3) / 30
    batches = list(minibatches(Split(x, None, (1, 3)), 4, torch.Generator().manual_seed(0), with_index=True))
    assert [len(i) for i, _ in batches] == [4, 4, 2]
    assert sorted(torch.cat([i for i, _ in batches]).tolist()) == list(range(10))
    assert all(torch.equal(xb, x[i]) for i, xb in batches)
    plain = list(minibatches(Split(x, None, (1, 3)), 4, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, (_, b) in zip(plain, batches))  # same draws either way
