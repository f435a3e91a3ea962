"""Tests of vae_utils.data: the real download path, served from 127.0.0.1, and the loaders' options.

Nothing here leaves the machine: every mirror is a loopback HTTP server (http.server in a thread,
shut down after its test), a closed loopback port, or a file:// URL. The real MNIST and Frey Face
files come from the offline copy in shared/data beside the repository.
"""
import contextlib
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

from vae_utils import data
from vae_utils.data import DataError, Resource, Split, fetch, load_frey, load_mnist, minibatches

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NO_SHARED = f"no offline copy of MNIST and Frey Face at {SHARED} (shared/data beside the repo)"
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir() or not (SHARED / "frey").is_dir(), reason=NO_SHARED)
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
LABELS = data.MNIST["test_labels"]  # the smallest real file: 4.5 KB gzipped, 10008 bytes kept


# ---------------------------------------------------------------------------------- helpers

class Server:
    """Serve the folder `root` over HTTP on 127.0.0.1 (a free port), in a thread.

    `errors` maps a URL path to a status code sent instead of the file; `cut` holds paths whose
    connection drops halfway through the body. Every GET's path is logged in `hits`.
    """

    def __init__(self, root, errors=None, cut=()):
        self.hits = []
        hits, errors = self.hits, errors or {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                hits.append(self.path)
                if self.path in errors:
                    self.send_error(errors[self.path])
                elif self.path in cut:
                    body = Path(root, self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:len(body) // 2])
                    self.close_connection = True
                else:
                    super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def closed_port() -> str:
    """A loopback URL where nothing listens: bind a socket to get a free port, then close it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def offline(mp: pytest.MonkeyPatch, cache: Path, *mirrors: str) -> None:
    """Point the cache at `cache` and the mirrors at `mirrors`, and bypass any proxy."""
    for var in PROXY_VARS:
        mp.delenv(var, raising=False)
    mp.setenv("no_proxy", "127.0.0.1,localhost")
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    mp.setenv("VAE_UTILS_DATA", str(cache))
    mp.setenv("VAE_UTILS_MIRRORS", " ".join(mirrors))


def files_in(folder: Path) -> list[str]:
    """Every file under `folder` (temporary .part files included), as relative paths."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def is_binary(x: torch.Tensor) -> bool:
    """Only 0s and 1s, and both of them."""
    return bool(((x == 0) | (x == 1)).all() and x.any() and not x.all())


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PAYLOAD = bytes(range(256)) * 8  # 2 KB of data for a tiny synthetic resource
TINY = Resource("tiny.gz", "tiny", sha256(PAYLOAD), len(PAYLOAD), urls=())
GOOD_GZ = gzip.compress(PAYLOAD, mtime=0)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache per test; the default mirror is a closed loopback port, so no test can
    reach the internet by accident."""
    offline(monkeypatch, tmp_path / "cache", closed_port())
    return tmp_path / "cache"


@pytest.fixture
def serve():
    """Start loopback servers with serve(root, ...); all are shut down when the test ends."""
    servers = []

    def start(root, **kwargs) -> Server:
        servers.append(Server(root, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def mirror(tmp_path) -> Path:
    """A mirror folder that serves tiny/tiny.gz (gzip of PAYLOAD); tests may overwrite it."""
    (tmp_path / "mirror" / "tiny").mkdir(parents=True)
    (tmp_path / "mirror" / "tiny" / "tiny.gz").write_bytes(GOOD_GZ)
    return tmp_path / "mirror"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Real MNIST, downloaded once over HTTP from shared/data into a module cache.

    Yields (splits, server, cache); the server stays up for the module, then shuts down.
    """
    if not SHARED.is_dir():
        pytest.skip(NO_SHARED)
    server, cache = Server(SHARED), tmp_path_factory.mktemp("mnist_cache")
    try:
        with pytest.MonkeyPatch.context() as mp:
            offline(mp, cache, server.url)
            splits = load_mnist(progress=False)
        yield splits, server, cache
    finally:
        server.close()


@pytest.fixture
def mnist_cache(real, monkeypatch):
    """Point the loaders at the module's filled MNIST cache (and its server)."""
    _, server, cache = real
    offline(monkeypatch, cache, server.url)
    return real


# ------------------------------------------------------------------------------- real data

@needs_shared
def test_mnist_downloads_verifies_and_loads(real):
    """MNIST comes over HTTP once per file, is stored decompressed with the published sha256,
    and loads as 60000/10000 images of 28x28 grey levels in [0, 1] with their labels."""
    splits, server, cache = real
    assert sorted(server.hits) == sorted(f"/mnist/{r.name}" for r in data.MNIST.values())
    assert files_in(cache) == sorted(f"mnist/{r.stored_name}" for r in data.MNIST.values())
    for r in data.MNIST.values():
        assert sha256((cache / "mnist" / r.stored_name).read_bytes()) == r.sha256
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


@needs_shared
def test_second_mnist_load_uses_the_cache(mnist_cache):
    """A second load reads the verified cache and sends no request to the server."""
    first, server, _ = mnist_cache
    before = len(server.hits)
    again = load_mnist(progress=False)
    assert len(server.hits) == before
    assert torch.equal(again["test"].x, first["test"].x)
    assert torch.equal(again["train"].y, first["train"].y)


@needs_shared
def test_frey_face_downloads_and_loads(serve, cache, monkeypatch):
    """Frey Face: one download, 1965 frames of 28x20 pixels in [0, 1]; the next load is cached."""
    server = serve(SHARED)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    splits = load_frey(progress=False)
    assert server.hits == ["/frey/frey_rawface.mat"]
    assert sha256((cache / "frey" / "frey_rawface.mat").read_bytes()) == data.FREY.sha256
    train, test = splits["train"], splits["test"]
    assert len(train) + len(test) == 1965 and len(test) == 200
    assert train.x.shape[1] == 560 and test.images().shape == (200, 28, 20)
    assert train.y is None and 0 <= train.x.min() and train.x.max() <= 1
    everything = load_frey(test=0, progress=False)
    assert server.hits == ["/frey/frey_rawface.mat"]  # the cache was reused
    assert set(everything) == {"train"} and len(everything["train"]) == 1965
    assert torch.equal(everything["train"].x.sort(0).values,
                       torch.cat([train.x, test.x]).sort(0).values)  # same frames, reshuffled


@needs_shared
def test_file_urls_work_as_mirrors(cache, monkeypatch):
    """VAE_UTILS_MIRRORS accepts file:// URLs; a missing folder falls through to the next one."""
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{(cache.parent / 'nowhere').as_uri()} {SHARED.as_uri()}")
    path = fetch(LABELS, progress=False)
    assert path == cache / "mnist" / "t10k-labels-idx1-ubyte"
    assert sha256(path.read_bytes()) == LABELS.sha256
    assert sha256(fetch(data.FREY, progress=False).read_bytes()) == data.FREY.sha256


@needs_shared
@pytest.mark.parametrize("status", [403, 404])
def test_http_error_falls_through_to_next_mirror(serve, cache, monkeypatch, status):
    """A mirror that answers 403 or 404 is skipped; the next mirror's copy is used."""
    bad = serve(SHARED, errors={f"/mnist/{LABELS.name}": status})
    good = serve(SHARED)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {good.url}")
    path = fetch(LABELS, progress=False)
    assert bad.hits == good.hits == [f"/mnist/{LABELS.name}"]
    assert sha256(path.read_bytes()) == LABELS.sha256
    assert files_in(cache) == ["mnist/t10k-labels-idx1-ubyte"]


@needs_shared
def test_all_mirrors_failing_names_each_failure(serve, cache, monkeypatch):
    """When every mirror fails, the error lists each URL with its reason (status code included)."""
    bad = serve(SHARED, errors={f"/mnist/{LABELS.name}": 403})
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {closed_port()}")
    with pytest.raises(DataError) as e:
        fetch(LABELS, progress=False)
    msg = str(e.value)
    assert f"{bad.url}/mnist/{LABELS.name}" in msg and "403" in msg
    assert "refused" in msg.lower()
    assert not cache.exists() or files_in(cache) == []


# ------------------------------------------------------------------------------- bad inputs

def expect_clear_error(cache: Path, *says: str) -> str:
    """fetch(TINY) must raise a DataError naming the file, what was expected and what to do,
    and leave the cache without any file (not even a .part temp file). Returns the message."""
    with pytest.raises(DataError) as e:
        fetch(TINY, progress=False)
    msg = str(e.value)
    assert "tiny.gz" in msg  # the file
    assert TINY.sha256 in msg and str(TINY.size) in msg  # what was expected
    assert "VAE_UTILS_MIRRORS" in msg and "try again" in msg  # what to do
    for s in says:
        assert s.lower() in msg.lower()
    assert not cache.exists() or files_in(cache) == []
    return msg


@pytest.mark.parametrize("body, says", [
    (GOOD_GZ[:len(GOOD_GZ) // 2], "truncated"),
    (b"PK\x03\x04 this is a zip, not a gzip file" * 10, "not a gzip"),
    (b"<!DOCTYPE html>\n<html><body><h1>Please log in</h1></body></html>\n", "HTML"),
    (gzip.compress(PAYLOAD[::-1], mtime=0), "wrong content"),  # valid gzip, wrong bytes
], ids=["truncated-gzip", "not-gzip", "html-page-200", "checksum-mismatch"])
def test_bad_file_gives_clear_error_and_clean_cache(serve, mirror, cache, monkeypatch, body, says):
    """A mirror that answers 200 with bad bytes is rejected with a clear DataError."""
    (mirror / "tiny" / "tiny.gz").write_bytes(body)
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    expect_clear_error(cache, says, f"{server.url}/tiny/tiny.gz")
    assert server.hits == ["/tiny/tiny.gz"]


def test_dropped_connection_gives_clear_error(serve, mirror, cache, monkeypatch):
    """A body cut short of its Content-Length is reported, and nothing is cached."""
    server = serve(mirror, cut={"/tiny/tiny.gz"})
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    expect_clear_error(cache, "stopped after")


def test_no_network_gives_clear_error(cache, monkeypatch):
    """A mirror nobody answers (a closed loopback port) fails fast with a clear DataError."""
    url = closed_port()
    monkeypatch.setenv("VAE_UTILS_MIRRORS", url)
    expect_clear_error(cache, url, "internet connection")


def test_wrong_service_or_bad_url_gives_clear_error(cache, monkeypatch):
    """A mirror that is not a URL, or a port that answers but not in HTTP, is reported as a
    failed source (a DataError), not as a crash from deep inside urllib."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)

        def answer_garbage():
            with contextlib.suppress(OSError), listener.accept()[0] as conn:
                conn.recv(1024)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        monkeypatch.setenv("VAE_UTILS_MIRRORS", f"mirror/without/scheme http://127.0.0.1:{port}")
        msg = expect_clear_error(cache, "mirror/without/scheme/tiny/tiny.gz", f"127.0.0.1:{port}")
        thread.join(timeout=10)
    assert "unknown url type" in msg


def test_bad_mirror_then_good_one(serve, mirror, cache, monkeypatch, tmp_path):
    """A mirror serving a bad file is skipped, and the next one's good copy is cached."""
    (tmp_path / "bad" / "tiny").mkdir(parents=True)
    (tmp_path / "bad" / "tiny" / "tiny.gz").write_bytes(GOOD_GZ[:-8])  # no gzip trailer
    bad, good = serve(tmp_path / "bad"), serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {good.url}")
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert bad.hits == good.hits == ["/tiny/tiny.gz"]


def test_good_cache_is_not_downloaded_again(serve, mirror, cache, monkeypatch):
    """The first fetch stores the decompressed bytes; the second sends no request."""
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    path = fetch(TINY, progress=False)
    assert path == cache / "tiny" / "tiny" and path.read_bytes() == PAYLOAD
    assert fetch(TINY, progress=False) == path
    assert server.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]


def test_corrupt_cached_file_is_replaced(serve, mirror, cache, monkeypatch):
    """A corrupt file in the cache stays untouched while no good copy can be had, then is
    replaced by a good download."""
    (cache / "tiny").mkdir(parents=True)
    (cache / "tiny" / "tiny").write_bytes(b"edited by hand")
    with pytest.raises(DataError, match="tiny.gz"):
        fetch(TINY, progress=False)  # the default mirror is a closed port
    assert files_in(cache) == ["tiny/tiny"]
    assert (cache / "tiny" / "tiny").read_bytes() == b"edited by hand"
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]


def test_uncompressed_resource(serve, tmp_path, cache, monkeypatch):
    """A resource that is not .gz (like Frey's .mat) is checked as served, HTML pages included."""
    res = Resource("blob.bin", "blob", sha256(PAYLOAD), len(PAYLOAD), urls=())
    (tmp_path / "m" / "blob").mkdir(parents=True)
    (tmp_path / "m" / "blob" / "blob.bin").write_bytes(b"<html><body>404</body></html>")
    (tmp_path / "n" / "blob").mkdir(parents=True)
    (tmp_path / "n" / "blob" / "blob.bin").write_bytes(PAYLOAD)
    html, good = serve(tmp_path / "m"), serve(tmp_path / "n")
    monkeypatch.setenv("VAE_UTILS_MIRRORS", html.url)
    with pytest.raises(DataError, match="HTML"):
        fetch(res, progress=False)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", good.url)
    assert fetch(res, progress=False).read_bytes() == PAYLOAD
    assert files_in(cache) == ["blob/blob.bin"]


# --------------------------------------------------------------------------- load_mnist options

@needs_shared
def test_static_binarization_is_binary_and_reproducible(mnist_cache):
    """binarize="static" gives only 0/1 pixels, about as many ones as the grey mean, and the
    same pixels again for the same seed."""
    grey = mnist_cache[0]
    a, b = load_mnist("static", seed=0, progress=False), load_mnist("static", seed=0, progress=False)
    for name in ("train", "test"):
        assert is_binary(a[name].x)
        assert not a[name].dynamic
        assert torch.equal(a[name].x, b[name].x) and torch.equal(a[name].y, grey[name].y)
    x, g = a["test"].x, grey["test"].x  # x ~ Bernoulli(g): check it on the test images
    assert abs(x.mean() - g.mean()) < 0.002
    assert not x[g == 0].any() and x[g == 1].all()


@needs_shared
def test_dynamic_binarization_and_validation_split(mnist_cache):
    """binarize="dynamic" with validation=10000: 50000/10000/10000; train keeps its grey levels
    and is marked dynamic, valid and test are binary; minibatches of train are binary and
    redrawn on every pass, while valid stays fixed."""
    grey = mnist_cache[0]
    d = load_mnist("dynamic", validation=10000, seed=0, progress=False)
    assert {k: len(v) for k, v in d.items()} == {"train": 50000, "valid": 10000, "test": 10000}
    assert d["train"].dynamic and not d["valid"].dynamic and not d["test"].dynamic
    assert torch.equal(d["train"].x, grey["train"].x[:50000])
    assert torch.equal(d["valid"].y, grey["train"].y[50000:])
    for name in ("valid", "test"):
        assert is_binary(d[name].x)
    assert not d["valid"].x[grey["train"].x[50000:] == 0].any()  # valid = the last 10000 images
    gen = torch.Generator().manual_seed(0)
    one = torch.cat(list(minibatches(d["train"], 25000, gen, shuffle=False)))
    two = torch.cat(list(minibatches(d["train"], 25000, gen, shuffle=False)))
    assert is_binary(one) and one.shape == (50000, 784)
    assert not torch.equal(one, two)
    assert abs(one.mean() - d["train"].x.mean()) < 0.002
    valid = [torch.cat(list(minibatches(d["valid"], 4000, gen, shuffle=False))) for _ in range(2)]
    assert torch.equal(valid[0], valid[1]) and torch.equal(valid[0], d["valid"].x)


@pytest.mark.parametrize("kwargs", [
    dict(binarize="yes"), dict(binarize=None), dict(validation=-1), dict(validation=60000),
    dict(validation=2.5)], ids=str)
def test_invalid_mnist_options_raise_value_error(kwargs):
    """Bad binarize or validation values raise ValueError at once, before any download
    (the mirror here is a closed port, so a download attempt would raise DataError)."""
    with pytest.raises(ValueError):
        load_mnist(progress=False, **kwargs)


@pytest.mark.parametrize("test", [-1, 1965])
def test_invalid_frey_test_size_raises_value_error(test):
    """load_frey rejects a test size outside [0, 1965) before any download."""
    with pytest.raises(ValueError):
        load_frey(test=test, progress=False)


# ------------------------------------------------------------------------------- minibatches

def tagged(n: int) -> Split:
    """A split whose row i holds the value i everywhere, so a batch tells which rows it took."""
    return Split(torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3), None, (1, 3))


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
