"""The checkpoint cache: keys that say what made a model, files that are verified, and a cache
that never loses a model it did not write."""
import ast
import collections
import io
import os
import random
import zipfile
from pathlib import Path

import pytest
import torch

import vae_utils
from vae_utils import cache
from vae_utils import checkpoints as C

FIELDS = {"algorithm": "AEVB", "model": {"x_dim": 20, "z_dim": 2, "hidden": [16]},
          "train": {"lr": 0.02, "batch_size": 100, "epochs": 3, "seed": 0}, "data": "binary-512"}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "ckpt"
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(d))
    return d


def _fields(**changes):
    f = {k: (dict(v) if isinstance(v, dict) else v) for k, v in FIELDS.items()}
    for dotted, v in changes.items():
        *outer, last = dotted.split("__")
        d = f
        for k in outer:
            d = d[k]
        d[last] = v
    return f


def _payload(seed=0):
    """A realistic payload: model and optimizer state, counters, history with snapshots."""
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    big = torch.randn(6, 5)
    optimizer = {  # the shape of Adam's state_dict (building an Adam costs seconds of imports)
        "state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)}
                  for i, p in enumerate(net.parameters())},
        "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
                          "amsgrad": False, "foreach": None, "params": [0, 1]}]}
    return {"state_dict": net.state_dict(), "optimizer": optimizer, "steps": 7,
            "history": {"epoch": [1, 2], "elbo": [-1.5, -0.25], "note": None, "done": True,
                        "snapshots": {100: net.state_dict(), 200: {"w": big[:, 1]}}},  # a strided view
            "odd": (torch.tensor(3.5, dtype=torch.bfloat16), torch.tensor([True, False]), "x", float("-0.0"))}


def assert_same(a, b, where="payload"):
    """Same structure, container types, dtypes, shapes and bytes (so -0.0 != 0.0)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.requires_grad) == (b.dtype, b.shape, b.requires_grad), where
        raw = lambda t: t.contiguous().reshape(-1).view(torch.uint8)
        assert torch.equal(raw(a), raw(b)), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a.hex() == b.hex(), where
    else:
        assert a == b, where


def _snapshot(d: Path):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.iterdir())}


# -- one file --------------------------------------------------------------------------------

def test_round_trip_of_a_nested_payload(tmp_path):
    payload = _payload()
    path = C.save(tmp_path / "m.pt", payload, {"a": 1})
    loaded = C.load(path)
    assert_same(payload, loaded)
    assert isinstance(loaded["state_dict"], collections.OrderedDict)
    raw = torch.load(path, weights_only=True)
    assert (raw["kind"], raw["format"], raw["fields"]) == ("vae_utils checkpoint", 2, {"a": 1})
    assert len(raw["checksum"]) == 64


def test_save_refuses_what_weights_only_could_not_load(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['model'\]"):
        C.save(tmp_path / "m.pt", {"model": torch.nn.Linear(2, 2)})
    assert not (tmp_path / "m.pt").exists()


def test_load_with_fields_lists_every_difference(tmp_path):
    path = C.save(tmp_path / "m.pt", {"w": torch.ones(2)}, {"train": {"lr": 0.02, "seed": 0}, "a": "x"})
    with pytest.raises(C.CheckpointMismatch) as e:
        C.load(path, fields={"train": {"lr": 0.1, "seed": 0}, "a": "y", "b": 1})
    msg = str(e.value)
    assert str(path) in msg
    for line in ["train.lr: saved 0.02, asked 0.1", 'a: saved "x", asked "y"', "b: saved (absent), asked 1"]:
        assert line in msg


@pytest.mark.parametrize("content", [b"", b"\x00" * 3, bytes(random.Random(0).randrange(256) for _ in range(4096)),
                                     "truncated", "foreign", "format 99"])
def test_unreadable_files_name_themselves(tmp_path, content):
    path = tmp_path / "weird-name.pt"
    if content == "truncated":
        C.save(path, _payload())
        content = path.read_bytes()[: path.stat().st_size // 2]
    elif content == "foreign":  # a valid torch file that is not ours
        torch.save({"state_dict": {"w": torch.ones(2)}}, path)
        content = path.read_bytes()
    elif content == "format 99":
        torch.save({"kind": C.KIND, "format": 99, "payload": {}}, path)
        content = path.read_bytes()
    path.write_bytes(content)
    with pytest.raises(C.CheckpointUnreadable, match="weird-name.pt") as e:
        C.load(path)
    assert "delete" in str(e.value)
    assert not isinstance(e.value, C.CheckpointMismatch)


def _member_data_ranges(data: bytes):
    """{member name: range of its bytes in the file} of torch's zip container."""
    out = {}
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        h = info.header_offset
        start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + int.from_bytes(data[h + 28:h + 30], "little")
        out[info.filename] = range(start, start + info.compress_size)
    return out


@pytest.mark.filterwarnings("ignore")
def test_a_flipped_byte_never_loads_as_other_data(tmp_path):
    column = torch.arange(24, dtype=torch.int16).reshape(4, 6)[:, 1]  # a view: only 4 of 24 values saved
    payload = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "v": column, "n": 5, "name": "probe"}
    path = C.save(tmp_path / "m.pt", payload, {"algorithm": "AEVB"})
    data = path.read_bytes()
    members = _member_data_ranges(data)
    pickle = next(r for n, r in members.items() if n.endswith("/data.pkl"))
    tensors = [r for n, r in members.items() if "/data/" in n]
    assert sorted(map(len, tensors)) == [4 * 2, 12 * 4]
    tensor = set().union(*tensors)
    raised = set()
    for pos in sorted(set(range(0, len(data), 3)) | set(pickle) | tensor):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        path.write_bytes(bad)
        try:
            got = C.load(path)
        except C.CheckpointError:
            raised.add(pos)
            continue
        # a flip that changes nothing loaded (zip padding and timestamps, the pickle's protocol
        # number...) may pass: what load returns is still exactly what was saved
        assert_same(payload, got)
    assert tensor <= raised  # every byte of tensor data counts
    assert len(raised & set(pickle)) > 0.9 * len(pickle)

    # inside tensor data torch itself notices nothing; the checksum does
    bad = bytearray(data)
    bad[max(tensors, key=len).start + 5] ^= 0x01
    path.write_bytes(bad)
    assert not torch.equal(torch.load(path, weights_only=True)["payload"]["w"], payload["w"])
    with pytest.raises(C.CheckpointCorrupt, match="m.pt"):
        C.load(path)


def test_files_get_the_umasks_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = C.save(tmp_path / "m.pt", {"a": 1})
        stored = cache.store("probe", FIELDS, {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert stored.stat().st_mode & 0o777 == 0o644


# -- the key ---------------------------------------------------------------------------------

def test_checkpoint_dir_rule(monkeypatch, tmp_path):
    for var in ("VAE_UTILS_CHECKPOINTS", "VAE_UTILS_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert C.checkpoint_dir() == tmp_path / "home/.cache/vae_utils/checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.checkpoint_dir() == tmp_path / "xdg/vae_utils/checkpoints"
    monkeypatch.setenv("VAE_UTILS_DATA", str(tmp_path / "data"))
    assert C.checkpoint_dir() == tmp_path / "data/checkpoints"
    monkeypatch.setenv("VAE_UTILS_CHECKPOINTS", str(tmp_path / "ck"))
    assert C.checkpoint_dir() == tmp_path / "ck"


def test_key_is_canonical_and_follows_every_field():
    k = C.key(FIELDS)
    assert len(k) == 12 and int(k, 16) >= 0
    reordered = dict(reversed(list(FIELDS.items())))
    reordered["model"] = {**FIELDS["model"], "hidden": (16,)}
    assert C.key(reordered) == k
    assert C.key(_fields(train__lr=0.1)) != k
    assert C.key(_fields(model__z_dim=3)) != k
    with pytest.raises(ValueError, match="code"):
        C.key({**FIELDS, "code": "mine"})
    with pytest.raises(TypeError, match="train.device"):
        C.key(_fields(train__device=torch.device("cpu")))


def test_key_changes_with_version_and_code(monkeypatch):
    k = C.key(FIELDS)
    monkeypatch.setattr(vae_utils, "__version__", "99.0")
    k_version = C.key(FIELDS)
    monkeypatch.setattr(C, "code_fingerprint", lambda modules=C.MODULES: "0123456789ab")
    k_code = C.key(FIELDS)
    assert len({k, k_version, k_code}) == 3
    assert C.full_fields(FIELDS)["code"] == "0123456789ab"
    assert C.full_fields(FIELDS)["version"] == "99.0"


MODULE = '''"""A module."""
import math


def area(r):
    """Of a disc."""
    return math.pi * r ** 2  # pi r squared
'''


def test_code_fingerprint_sees_code_not_comments(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    src = tmp_path / "fp_probe_module.py"

    def fingerprint(text, names=("fp_probe_module",)):
        src.write_text(text)
        C.code_fingerprint.cache_clear()
        return C.code_fingerprint(names)

    base = fingerprint(MODULE)
    assert len(base) == 12
    restyled = MODULE.replace('"""Of a disc."""', "'''The area\n    of a disc.'''").replace(
        "# pi r squared", "# comment").replace("math.pi * r ** 2", "(math.pi*r**2)") + "\n\n# trailing\n"
    assert fingerprint(restyled) == base
    assert fingerprint(MODULE.replace('"""A module."""\n', "")) == base
    assert fingerprint(MODULE.replace("r ** 2", "r ** 3")) != base
    assert fingerprint(MODULE + "\nX = 1\n") != base
    assert fingerprint(MODULE, ("fp_probe_module", "no_such_module_xyz", "no_such.pkg")) == base
    C.code_fingerprint.cache_clear()


def test_default_fingerprint_is_memoized_and_covers_the_package():
    C.code_fingerprint.cache_clear()
    fp = C.code_fingerprint()
    assert fp == C.code_fingerprint() and C._fingerprint.cache_info().hits >= 1
    assert fp != C.code_fingerprint(C.MODULES[:-1])


@pytest.mark.parametrize("module", [C, cache], ids=lambda m: m.__name__)
def test_the_modules_stay_in_the_core(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {f"{'.' * n.level}{n.module}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"ast", "collections", "functools", "hashlib", "importlib.util", "json", "numbers",
                        "os", "re", "warnings", "torch", "__future__", "pathlib", "typing", ".io", ".checkpoints",
                        "vae_utils"}


# -- the cache -------------------------------------------------------------------------------

def test_two_settings_under_one_name_live_side_by_side(cache_dir):
    a, b = _fields(), _fields(train__epochs=100)
    pa, pb = cache.store("probe", a, {"w": torch.zeros(2)}), cache.store("probe", b, {"w": torch.ones(2)})
    assert pa != pb and sorted(p.name for p in cache_dir.iterdir()) == sorted([pa.name, pb.name])
    assert pa == cache.path_for("probe", a) and pa.name == f"probe-{C.key(a)}.pt"
    assert torch.equal(cache.lookup("probe", a)[0]["w"], torch.zeros(2))
    assert torch.equal(cache.lookup("probe", b)[0]["w"], torch.ones(2))


def test_the_algorithm_is_part_of_the_key():
    """Regression: fit_or_load("probe", "MCEM") used to return the weights trained by AEVB."""
    aevb, mcem = _fields(algorithm="AEVB"), _fields(algorithm="MCEM")
    cache.store("probe", aevb, {"by": "AEVB"})
    payload, reason = cache.lookup("probe", mcem)
    assert payload is None
    assert 'algorithm: saved "AEVB", asked "MCEM"' in reason
    cache.store("probe", mcem, {"by": "MCEM"})
    assert cache.lookup("probe", aevb)[0] == {"by": "AEVB"}
    assert cache.lookup("probe", mcem)[0] == {"by": "MCEM"}


def test_the_reason_lists_every_differing_field():
    cache.store("probe", FIELDS, {"a": 1})
    cache.store("probe-other", _fields(train__lr=0.5), {"a": 1})  # another name: not listed
    asked = _fields(train__lr=0.1, model__z_dim=5, data="frey")
    payload, reason = cache.lookup("probe", asked)
    assert payload is None
    lines = [l.strip() for l in reason.splitlines()]
    assert "train.lr: saved 0.02, asked 0.1" in lines
    assert "model.z_dim: saved 2, asked 5" in lines
    assert 'data: saved "binary-512", asked "frey"' in lines
    assert f"probe-{C.key(FIELDS)}.pt differs in:" in lines
    assert "probe-other" not in reason and len(lines) == 5
    assert cache.lookup("nothing", FIELDS)[1] == "no cached model of this name yet"


def test_legacy_and_other_files_are_never_modified(cache_dir, capsys):
    cache_dir.mkdir()
    legacy = cache_dir / "probe.pt"  # as train.save_checkpoint wrote it
    torch.save({"format": 1, "model_config": {"x_dim": 20, "z_dim": 2, "hidden": [16]},
                "train_config": {"lr": 0.05, "batch_size": 100, "epochs": 3, "seed": 0},
                "state_dict": {"w": torch.ones(2)}, "history": None}, legacy)
    other = cache.store("probe", _fields(train__epochs=500), {"hours": "of training"})
    os.utime(legacy, ns=(1, 1))
    os.utime(other, ns=(2, 2))
    before = _snapshot(cache_dir)

    reason = cache.lookup("probe", FIELDS)[1]
    assert "probe.pt (format 1" in reason and "train.lr: saved 0.05, asked 0.02" in reason
    assert "train.epochs: saved 500, asked 3" in reason
    with pytest.raises(C.CheckpointUnreadable, match="format-1"):
        C.load(legacy)
    made = []
    cache.cached("probe", FIELDS, lambda: made.append(1) or {"new": True})
    assert cache.cached("probe", FIELDS, lambda: made.append(1) or {"new": True}) == {"new": True}
    assert made == [1]
    out = capsys.readouterr().out
    assert "train.lr: saved 0.05, asked 0.02" in out and "train.epochs: saved 500, asked 3" in out

    after = _snapshot(cache_dir)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {cache.path_for("probe", FIELDS).name}


def test_a_broken_file_is_reported_kept_and_only_moved_when_told(cache_dir):
    path = cache.store("probe", FIELDS, {"w": torch.arange(50.0)})
    data = bytearray(path.read_bytes())
    tensor = next(r for n, r in _member_data_ranges(bytes(data)).items() if "/data/" in n)
    data[tensor.start] ^= 0x01
    path.write_bytes(data)

    payload, reason = cache.lookup("probe", FIELDS)
    assert payload is None and str(path) in reason and "corrupt" in reason
    with pytest.raises(C.CheckpointCorrupt, match="Not overwritten"):
        cache.store("probe", FIELDS, {"w": torch.zeros(1)})
    made = []
    with pytest.raises(C.CheckpointCorrupt):
        cache.cached("probe", FIELDS, lambda: made.append(1) or {}, replace_broken=False)
    assert made == [] and path.read_bytes() == data  # refused before training, file untouched

    with pytest.warns(UserWarning, match="broken"):
        cache.store("probe", FIELDS, {"w": torch.zeros(1)}, replace_broken=True)
    assert Path(f"{path}.broken").read_bytes() == data
    assert torch.equal(cache.lookup("probe", FIELDS)[0]["w"], torch.zeros(1))

    path.write_bytes(b"garbage")  # broken again: the first .broken is kept, not overwritten
    with pytest.warns(UserWarning):
        assert cache.cached("probe", FIELDS, lambda: {"w": torch.ones(1)}, verbose=False)["w"].item() == 1
    assert Path(f"{path}.broken").read_bytes() == data
    assert Path(f"{path}.broken.1").read_bytes() == b"garbage"


def test_cached_prints_the_whole_reason_when_it_trains(capsys):
    cache.store("probe", FIELDS, {"a": 1})
    cache.cached("probe", _fields(train__lr=0.1, train__seed=3), lambda: {"a": 2})
    out = capsys.readouterr().out
    assert out.startswith("training probe: no cached model with these settings")
    assert "train.lr: saved 0.02, asked 0.1" in out and "train.seed: saved 0, asked 3" in out
    cache.cached("probe", FIELDS, lambda: {"a": 3})
    assert capsys.readouterr().out == ""


def test_the_checksum_sees_every_detail():
    t = torch.tensor([1.0, 2.0])
    base = C.checksum({"a": t, "b": [1, 2.0, True, None, "s"]})
    assert C.checksum({"b": [1, 2.0, True, None, "s"], "a": t.clone()}) == base  # key order: no
    for other in [{"a": t.double(), "b": [1, 2.0, True, None, "s"]},          # dtype
                  {"a": t.reshape(2, 1), "b": [1, 2.0, True, None, "s"]},     # shape
                  {"a": t.clone().requires_grad_(), "b": [1, 2.0, True, None, "s"]},
                  {"a": t + 1e-7, "b": [1, 2.0, True, None, "s"]},            # bytes
                  {"a": t, "b": (1, 2.0, True, None, "s")},                   # tuple vs list
                  {"a": t, "b": [1.0, 2.0, True, None, "s"]},                 # int vs float
                  {"a": t, "b": [1, 2.0, 1, None, "s"]},                      # bool vs int
                  {"a": t, "b": [1, 2.0, True, "None", "s"]},
                  {"a": t, "b": [1, -2.0, True, None, "s"]},
                  {"a": t, "b": [[1, 2.0], True, None, "s"]},                 # nesting
                  {"a": t, "b": [1, 2.0, True, None, "s"], "c": 0}]:
        assert C.checksum(other) != base, other
    assert C.checksum(0.0) != C.checksum(-0.0)


def test_a_file_under_the_wrong_key_is_not_trusted_nor_overwritten():
    """A checkpoint renamed by hand to another key's file name (or a key collision)."""
    a, b = _fields(), _fields(train__lr=0.5)
    cache.store("probe", a, {"by": "a"}).rename(cache.path_for("probe", b))
    payload, reason = cache.lookup("probe", b)
    assert payload is None and "train.lr: saved 0.02, asked 0.5" in reason
    with pytest.raises(C.CheckpointMismatch, match="Not overwritten"):
        cache.store("probe", b, {"by": "b"})
    assert C.load(cache.path_for("probe", b)) == {"by": "a"}


def test_a_file_that_cannot_be_opened_is_not_called_broken(tmp_path):
    """A folder (or a file without read permission) where a checkpoint should be raises the
    operating system's error: the reader must fix access, and nothing moves it aside."""
    (tmp_path / "m.pt").mkdir()
    with pytest.raises(IsADirectoryError):
        C.load(tmp_path / "m.pt")
    assert (tmp_path / "m.pt").is_dir()


def test_equal_configs_written_differently_give_one_key():
    """kl_weight=1 and kl_weight=1.0 are one config: TrainConfig stores one form."""
    from vae_utils.train import TrainConfig

    a, b = TrainConfig(kl_weight=1, lr=1, lr_steps=[[0.5, 1]]), TrainConfig(kl_weight=1.0, lr=1.0, lr_steps=((0.5, 1.0),))
    assert a == b and C.key({"train": a.to_dict()}) == C.key({"train": b.to_dict()})
