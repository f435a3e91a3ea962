"""Tests of vae_utils.download: the real download path, served from 127.0.0.1.

Nothing here leaves the machine: every mirror is a loopback HTTP(S) server in a thread (shut
down after its test), a raw loopback socket that misbehaves on purpose, a closed loopback port,
or a file:// URL. The real MNIST and Frey Face files come from the offline copy in shared/data
beside the repository.

No test depends on elapsed time: a server that must make the client give up never finishes
(it trickles or stays silent until the test ends), and the client's timeouts are made small;
every server loop is bounded and stops by itself.
"""
import contextlib
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest

from vae_utils import download
from vae_utils.download import DataError, Resource, deadline_for, fetch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NO_SHARED = f"no offline copy of MNIST and Frey Face at {SHARED} (shared/data beside the repo)"
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir() or not (SHARED / "frey").is_dir(), reason=NO_SHARED)
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
LABELS = download.MNIST["test_labels"]  # the smallest real file: 4.5 KB gzipped, 10008 bytes kept


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PAYLOAD = bytes(range(256)) * 8  # 2 KB of data for a tiny synthetic resource
TINY = Resource("tiny.gz", "tiny", sha256(PAYLOAD), len(PAYLOAD), urls=())
GOOD_GZ = gzip.compress(PAYLOAD, mtime=0)


# ---------------------------------------------------------------------------------- servers

class Server:
    """Serve the folder `root` over HTTP (or HTTPS with `tls`, an ssl server context) on
    127.0.0.1, in a thread.

    `errors` maps a URL path to a status code sent instead of the file; `cut` holds paths whose
    connection drops halfway through the body. Every GET's path is logged in `hits`.
    """

    def __init__(self, root, errors=None, cut=(), tls=None):
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
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class RawServer:
    """A TCP server on 127.0.0.1 that misbehaves on purpose: for each of at most `clients`
    connections it reads the request (after a TLS handshake with `tls`, an ssl server context),
    then runs `talk(conn, stop)` in its thread.

    `stop` is set when the test ends; every `talk` ends by then (its loops are bounded too),
    and so does the accept loop (at most 30 s of waiting for a client). `dropped` says whether
    a client hung up while its talk was still going on.
    """

    def __init__(self, talk, clients=1, tls=None):
        self.stop, self.talk, self.clients, self.tls = threading.Event(), talk, clients, tls
        self.dropped = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        scheme = "https" if tls is not None or talk is silent_tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        served = 0
        for _ in range(300):
            if self.stop.is_set() or served == self.clients:
                return
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            served += 1
            with contextlib.ExitStack() as stack:
                stack.enter_context(conn)
                conn.settimeout(5)
                try:
                    if self.tls is not None:
                        conn = stack.enter_context(self.tls.wrap_socket(conn, server_side=True))
                    if self.talk not in (silent, silent_tls):  # a silent one does not even read
                        conn.recv(65536)
                    self.talk(conn, self.stop)
                except OSError:  # a broken pipe or a reset: the client hung up
                    self.dropped = True

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()


def silent(conn, stop):
    """Accept, and never answer (until the test ends)."""
    stop.wait(30)


def silent_tls(conn, stop):
    """An HTTPS mirror that accepts, and never answers the TLS handshake."""
    stop.wait(30)


def trickle_body(conn, stop):
    """Headers at once, then the body one byte every 10 ms, never its last byte."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD_GZ))
    for b in GOOD_GZ[:-1]:
        if stop.wait(0.01):
            return
        conn.sendall(bytes([b]))
    stop.wait(30)


def trickle_headers(conn, stop):
    """A status line, then one header line growing by a byte every 10 ms, never ended."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(3000):
        if stop.wait(0.01):
            return
        conn.sendall(b"a")


def stall_mid_body(conn, stop):
    """Half the body, then silence with the connection open."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD_GZ))
    conn.sendall(GOOD_GZ[:len(GOOD_GZ) // 2])
    stop.wait(30)


def huge_announced(conn, stop):
    """Announce 100 MB, then send zeros (up to 100 MB) for as long as the client reads."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (100 << 20))
    for _ in range(100):
        if stop.is_set():
            return
        conn.sendall(bytes(1 << 20))


def huge_unannounced(conn, stop):
    """No Content-Length (the body ends when the connection closes): up to 100 MB of zeros."""
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    for _ in range(100):
        if stop.is_set():
            return
        conn.sendall(bytes(1 << 20))


def closed_port() -> str:
    """A loopback URL where nothing listens: bind a socket to get a free port, then close it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------- helpers

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
def raw():
    """Start misbehaving servers with raw(talk, ...); all are stopped when the test ends."""
    servers = []

    def start(talk, **kwargs) -> RawServer:
        servers.append(RawServer(talk, **kwargs))
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


@pytest.fixture
def quick(monkeypatch):
    """Small timeouts: 1 s of silence, 1.5 s for a whole file (the floor wins for TINY). Small,
    so the failing servers fail fast; not smaller, so that a good loopback server (TLS
    included) always answers within them, even on a loaded machine."""
    monkeypatch.setattr(download, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(download, "DEADLINE_FLOOR", 1.5)


def expect_clear_error(cache: Path, *says: str, res: Resource = TINY) -> str:
    """fetch(res) must raise a DataError naming the file, what was expected and what to do,
    and leave the cache without any file (not even a .part temp file). Returns the message."""
    with pytest.raises(DataError) as e:
        fetch(res, progress=False)
    msg = str(e.value)
    assert res.name in msg  # the file
    assert res.sha256 in msg and str(res.size) in msg  # what was expected
    assert "VAE_UTILS_MIRRORS" in msg and "try again" in msg  # what to do
    for s in says:
        assert s.lower() in msg.lower(), (s, msg)
    assert not cache.exists() or files_in(cache) == []
    return msg


# ------------------------------------------------------------------------------- real data

@needs_shared
def test_real_mnist_files_download_verify_and_cache(serve, cache, monkeypatch):
    """Each MNIST file comes over HTTP once, is stored decompressed with the published sha256
    (every real .gz is within its max_download bound), and the next fetch sends no request."""
    server = serve(SHARED)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    for r in download.MNIST.values():
        assert (SHARED / "mnist" / r.name).stat().st_size <= r.max_download
        path = fetch(r, progress=False)
        assert path == cache / "mnist" / r.stored_name and sha256(path.read_bytes()) == r.sha256
    assert sorted(server.hits) == sorted(f"/mnist/{r.name}" for r in download.MNIST.values())
    assert files_in(cache) == sorted(f"mnist/{r.stored_name}" for r in download.MNIST.values())
    for r in download.MNIST.values():
        fetch(r, progress=False)
    assert len(server.hits) == 4


@needs_shared
def test_frey_face_downloads_once(serve, cache, monkeypatch):
    """frey_rawface.mat (not compressed) comes over HTTP once, verified; then from the cache."""
    server = serve(SHARED)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    for _ in range(2):
        assert sha256(fetch(download.FREY, progress=False).read_bytes()) == download.FREY.sha256
    assert server.hits == ["/frey/frey_rawface.mat"]
    assert files_in(cache) == ["frey/frey_rawface.mat"]


@needs_shared
def test_file_urls_work_as_mirrors(cache, monkeypatch):
    """VAE_UTILS_MIRRORS accepts file:// URLs; a missing folder falls through to the next one."""
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{(cache.parent / 'nowhere').as_uri()} {SHARED.as_uri()}")
    path = fetch(LABELS, progress=False)
    assert path == cache / "mnist" / "t10k-labels-idx1-ubyte"
    assert sha256(path.read_bytes()) == LABELS.sha256
    assert sha256(fetch(download.FREY, progress=False).read_bytes()) == download.FREY.sha256


@needs_shared
@pytest.mark.parametrize("status", [403, 404])
def test_http_error_falls_through_to_next_mirror(serve, cache, monkeypatch, capsys, status):
    """A mirror that answers 403 or 404 is skipped, in one printed line naming the file, the
    failed URL, the reason and the next URL; the next mirror's copy is used."""
    bad = serve(SHARED, errors={f"/mnist/{LABELS.name}": status})
    good = serve(SHARED)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {good.url}")
    path = fetch(LABELS, progress=False)
    assert bad.hits == good.hits == [f"/mnist/{LABELS.name}"]
    assert sha256(path.read_bytes()) == LABELS.sha256
    assert files_in(cache) == ["mnist/t10k-labels-idx1-ubyte"]
    err = capsys.readouterr().err
    assert err.splitlines() == [f"mnist/{LABELS.name}: {bad.url}/mnist/{LABELS.name} failed "
                                f"(HTTP {status} {'Forbidden' if status == 403 else 'Not Found'}); "
                                f"trying {good.url}/mnist/{LABELS.name}"]


@needs_shared
def test_all_mirrors_failing_names_each_failure(serve, cache, monkeypatch, capsys):
    """When every mirror fails, the error lists each URL with its reason (status code included);
    only the fallback (not the final failure) was printed."""
    bad = serve(SHARED, errors={f"/mnist/{LABELS.name}": 403})
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {closed_port()}")
    msg = expect_clear_error(cache, f"{bad.url}/mnist/{LABELS.name}: HTTP 403", "refused",
                             res=LABELS)
    assert "Nothing was written" in msg
    assert len(capsys.readouterr().err.splitlines()) == 1


# -------------------------------------------------------------------------- bad file content

@pytest.mark.parametrize("body, says", [
    (GOOD_GZ[:len(GOOD_GZ) // 2], "truncated"),
    (GOOD_GZ[:-8], "truncated"),  # no gzip trailer: the checksum of the content is missing
    (b"PK\x03\x04 this is a zip, not a gzip file" * 10, "not a gzip"),
    (b"<!DOCTYPE html>\n<html><body><h1>Please log in</h1></body></html>\n", "HTML"),
    (gzip.compress(PAYLOAD[::-1], mtime=0), "wrong content"),  # valid gzip, wrong bytes
    (gzip.compress(PAYLOAD + b"!", mtime=0), "inflates to more than the 2048 bytes"),
], ids=["truncated-gzip", "no-trailer", "not-gzip", "html-page-200", "checksum-mismatch",
        "one-byte-too-long"])
def test_bad_file_gives_clear_error_and_clean_cache(serve, mirror, cache, monkeypatch, body, says):
    """A mirror that answers 200 with bad bytes is rejected with a clear DataError."""
    (mirror / "tiny" / "tiny.gz").write_bytes(body)
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    expect_clear_error(cache, says, f"{server.url}/tiny/tiny.gz")
    assert server.hits == ["/tiny/tiny.gz"]


def test_multi_member_gzip_is_accepted(serve, mirror, cache, monkeypatch):
    """A .gz made of several gzip members (as `cat a.gz b.gz` makes) is one file."""
    half = len(PAYLOAD) // 2
    (mirror / "tiny" / "tiny.gz").write_bytes(gzip.compress(PAYLOAD[:half]) + gzip.compress(PAYLOAD[half:]))
    monkeypatch.setenv("VAE_UTILS_MIRRORS", serve(mirror).url)
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A gzip file of 200 MB of zeros: about 200 KB, built without holding the 200 MB."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([z.compress(zeros) for _ in range(200)] + [z.flush()])


def test_gzip_bomb_is_never_inflated_whole(serve, tmp_path, cache, monkeypatch, bomb):
    """A small .gz that inflates to 200 MB, served for a 1 MB file, is stopped as soon as its
    output passes 1 MB: the memory peak of the whole fetch stays far below 200 MB."""
    res = Resource("big.gz", "big", sha256(b"whatever"), 1_000_000, urls=())
    assert len(bomb) < res.max_download  # so only the decompression bound can stop it
    (tmp_path / "m" / "big").mkdir(parents=True)
    (tmp_path / "m" / "big" / "big.gz").write_bytes(bomb)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", serve(tmp_path / "m").url)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            fetch(res, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "inflates to more than the 1000000 bytes" in str(e.value)
    assert peak < 20e6, f"fetch held {peak / 1e6:.0f} MB: the bomb was inflated"
    assert not cache.exists() or files_in(cache) == []


# -------------------------------------------------------------------- misbehaving servers

@pytest.mark.parametrize("talk, says", [
    (huge_announced, "the server announces 104857600 bytes, more than the 3092 that tiny.gz "
                     "can take; not downloaded"),
    (huge_unannounced, "the server sent more than the 3092 bytes that tiny.gz can take; "
                       "stopped reading there"),
], ids=["content-length", "no-content-length"])
def test_oversized_body_is_refused(raw, cache, monkeypatch, talk, says):
    """100 MB sent for a 2 KB file: refused on its Content-Length before the body is read, or,
    with no Content-Length, reading stops at the bound (TINY.max_download = 3092 bytes)."""
    assert TINY.max_download == 3092
    server = raw(talk)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    expect_clear_error(cache, says)


@pytest.mark.parametrize("talk, says", [
    (silent, "timed out after 1 s without an answer from the server"),
    (stall_mid_body, "timed out after 1 s without an answer from the server"),
    (trickle_body, "timed out after 1.5 s, the time allowed for the whole file"),
    (trickle_headers, "timed out after 1.5 s, the time allowed for the whole file"),
], ids=["never-answers", "stalls-mid-body", "trickles-body", "trickles-headers"])
def test_slow_server_times_out(raw, cache, monkeypatch, quick, talk, says):
    """A server that never answers, or goes silent, fails after CONNECT_TIMEOUT of silence; one
    that trickles bytes (body or headers) for far longer than the deadline fails at the
    deadline: the client hangs up while the server is still trickling."""
    server = raw(talk)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    expect_clear_error(cache, says, f"{server.url}/tiny/tiny.gz")
    if talk in (trickle_body, trickle_headers):
        server.thread.join(timeout=60)  # its one talk ends at the hang-up, or after 50 s at most
        assert server.dropped


def test_silent_mirror_then_good_one_is_announced(raw, serve, mirror, cache, monkeypatch,
                                                  capsys, quick):
    """The first mirror never answers: one printed line says so and names the next mirror,
    whose copy is then cached."""
    silent_server, good = raw(silent), serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{silent_server.url} {good.url}")
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert capsys.readouterr().err.splitlines() == [
        f"tiny/tiny.gz: {silent_server.url}/tiny/tiny.gz failed (timed out after 1 s without "
        f"an answer from the server); trying {good.url}/tiny/tiny.gz"]
    assert good.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]


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


def test_wrong_service_or_bad_url_gives_clear_error(raw, cache, monkeypatch):
    """A mirror that is not a URL, or a port that answers but not in HTTP, is reported as a
    failed source (a DataError), not as a crash from deep inside urllib."""
    def ssh_banner(conn, stop):
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = raw(ssh_banner)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"mirror/without/scheme {server.url}")
    msg = expect_clear_error(cache, "mirror/without/scheme/tiny/tiny.gz", server.url)
    assert "unknown url type" in msg


def test_deadline_scales_with_size_above_a_floor():
    """Small files get DEADLINE_FLOOR; big ones their max_download at MIN_RATE."""
    big = download.MNIST["train_images"]
    assert deadline_for(TINY) == download.DEADLINE_FLOOR
    assert deadline_for(big) == big.max_download / download.MIN_RATE > download.DEADLINE_FLOOR


# -------------------------------------------------------------------------------------- HTTPS

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl command to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", d / "key.pem",
                    "-out", d / "cert.pem"], check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


def test_https_mirror_works_and_times_out(serve, raw, mirror, cache, monkeypatch, capsys,
                                          quick, certificate):
    """Over HTTPS (the public mirrors' scheme): a server that accepts and never completes the
    TLS handshake fails after CONNECT_TIMEOUT; ones that trickle their headers or body, at the
    deadline; the next one, trusted through SSL_CERT_FILE, serves the file."""
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    mute, good = raw(silent_tls), serve(mirror, tls=tls)
    slow = [raw(trickle_headers, tls=tls), raw(trickle_body, tls=tls)]
    monkeypatch.setenv("VAE_UTILS_MIRRORS", " ".join([mute.url, *(s.url for s in slow), good.url]))
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert good.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]
    first, *others = capsys.readouterr().err.splitlines()
    assert first == (f"tiny/tiny.gz: {mute.url}/tiny/tiny.gz failed (timed out after 1 s "
                     f"without an answer from the server); trying {slow[0].url}/tiny/tiny.gz")
    assert len(others) == 2
    for server, line in zip(slow, others):
        assert line.startswith(f"tiny/tiny.gz: {server.url}/tiny/tiny.gz failed (timed out after "
                               "1.5 s, the time allowed for the whole file")


# ------------------------------------------------------------------------------------ the cache

def test_bad_mirror_then_good_one(serve, mirror, cache, monkeypatch, tmp_path):
    """A mirror serving a bad file is skipped, and the next one's good copy is cached."""
    (tmp_path / "bad" / "tiny").mkdir(parents=True)
    (tmp_path / "bad" / "tiny" / "tiny.gz").write_bytes(GOOD_GZ[:-8])  # no gzip trailer
    bad, good = serve(tmp_path / "bad"), serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{bad.url} {good.url}")
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert bad.hits == good.hits == ["/tiny/tiny.gz"]


def test_good_cache_is_not_downloaded_again(serve, mirror, cache, monkeypatch):
    """The first fetch stores the decompressed bytes, readable like any file the user makes;
    the second sends no request."""
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    path = fetch(TINY, progress=False)
    assert path == cache / "tiny" / "tiny" and path.read_bytes() == PAYLOAD
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not mkstemp's 0o600
    assert fetch(TINY, progress=False) == path
    assert server.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]


@pytest.mark.parametrize("corrupt", [b"edited by hand", bytes(len(PAYLOAD))],
                         ids=["wrong-size", "right-size-wrong-sha"])
def test_corrupt_cached_file_is_kept_until_replaced(serve, raw, mirror, cache, monkeypatch,
                                                    quick, corrupt, capsys):
    """With a corrupt file in the cache and every mirror failing (a silent one, a closed port),
    the error says the cached copy is corrupt and left as it is; the file is untouched. Then
    a good download replaces it."""
    (cache / "tiny").mkdir(parents=True)
    (cache / "tiny" / "tiny").write_bytes(corrupt)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", f"{raw(silent).url} {closed_port()}")
    with pytest.raises(DataError) as e:
        fetch(TINY, progress=False)
    msg = str(e.value)
    assert f"The cached copy {cache / 'tiny' / 'tiny'} is corrupt ({len(corrupt)} bytes" in msg
    assert "left as it is" in msg and "timed out" in msg and "refused" in msg.lower()
    assert files_in(cache) == ["tiny/tiny"]
    assert (cache / "tiny" / "tiny").read_bytes() == corrupt
    server = serve(mirror)
    monkeypatch.setenv("VAE_UTILS_MIRRORS", server.url)
    capsys.readouterr()
    assert fetch(TINY, progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/tiny/tiny.gz"] and files_in(cache) == ["tiny/tiny"]
    assert capsys.readouterr().err.startswith("tiny/tiny: the cached copy was corrupt (")  # said, not silent


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

