"""Downloads: fetch a data file from its mirrors, verify it, and cache it.

Every file is checked by SHA-256 (for a .gz file, of the decompressed bytes, which all mirrors
share) and written to the cache atomically (`vae_utils.io.atomic_write`), so the cache never
holds a half-written or corrupt download. A good cached file is never downloaded again; a bad
one is left untouched until a good copy has arrived.

A mirror is given up on, and the next one tried (announced on one line of stderr), as soon as
something is wrong: no answer within CONNECT_TIMEOUT; a file unfinished at its deadline
(deadline_for); more bytes announced or sent than the file can take (Resource.max_download);
a .gz inflating past the expected size (decompression stops there: a gzip bomb is never
inflated whole); bytes that are not the expected file.

Settings (environment variables): VAE_UTILS_DATA, the cache directory (default:
$XDG_CACHE_HOME/vae_utils, else ~/.cache/vae_utils); VAE_UTILS_MIRRORS, space-separated base
URLs that replace the public mirrors, each serving ``mnist/<file>`` and ``frey/<file>`` (e.g.
``file:///path/to/shared/data`` or ``http://127.0.0.1:8000``; tests and CI use it).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_write

CONNECT_TIMEOUT = 10.0  # s: to connect, and the longest silence of a server before we give up
DEADLINE_FLOOR = 30.0  # s: the least time a whole file is given, however small
MIN_RATE = 100_000  # bytes/s: the slowest transfer we wait for (sets the deadline of big files)


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
    def gzipped(self) -> bool:
        return self.name.endswith(".gz")

    @property
    def stored_name(self) -> str:
        return self.name[:-3] if self.gzipped else self.name

    @property
    def max_download(self) -> int:
        """The most bytes a mirror may send: the size itself, or for a .gz file the size plus
        what gzip adds to incompressible data (headers and stored blocks) with room to spare."""
        return self.size + self.size // 100 + 1024 if self.gzipped else self.size


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


def deadline_for(res: Resource) -> float:
    """Seconds allowed for a whole download of `res`: max_download at MIN_RATE, or DEADLINE_FLOOR."""
    return max(DEADLINE_FLOOR, res.max_download / MIN_RATE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _looks_like_html(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in head


def _gunzip(res: Resource, raw: bytes) -> bytes:
    """Inflate a gzip file (one member or more), or raise DataError. Output is asked for at
    most one byte past res.size (max_length), so a gzip bomb is stopped right there."""
    out, limit, data = bytearray(), res.size + 1, raw
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip wrapper: checks CRC and length
            while not d.eof:
                chunk = d.decompress(data, limit - len(out))  # limit - len(out) >= 1
                out += chunk
                if len(out) > res.size:
                    raise DataError(f"{res.name} inflates to more than the {res.size} bytes "
                                    "expected (a wrong file, or a gzip bomb); stopped there")
                data = d.unconsumed_tail
                if not data and not chunk:
                    break  # input used up and nothing more comes out
            if not d.eof:
                raise DataError(f"{res.name} is truncated or corrupt: the gzip stream ends "
                                f"early, after {len(out)} bytes of output")
            data = d.unused_data.lstrip(b"\0")  # another member may follow; zero padding may
    except zlib.error as e:
        raise DataError(f"{res.name} is truncated or corrupt: gzip says {e}") from None
    return bytes(out)


def _decode(res: Resource, raw: bytes) -> bytes:
    """Turn downloaded bytes into the bytes we keep, or raise DataError saying what is wrong."""
    if _looks_like_html(raw):
        raise DataError(f"the server sent an HTML page instead of {res.name} "
                        "(an error or login page, not data)")
    if res.gzipped:
        if raw[:2] != b"\x1f\x8b":
            raise DataError(f"{res.name} is not a gzip file (it starts with {raw[:8]!r})")
        raw = _gunzip(res, raw)
    if len(raw) != res.size or _sha256(raw) != res.sha256:
        raise DataError(f"{res.stored_name} has the wrong content: {len(raw)} bytes with sha256 "
                        f"{_sha256(raw)}, expected {res.size} bytes with sha256 {res.sha256}")
    return raw


class _Watchdog:
    """Shuts the sockets of one download when its deadline passes, whatever they wait for
    (headers, body, a stalled server): the blocked read then returns and the download fails."""

    def __init__(self, seconds: float):
        self.end, self.expired = time.monotonic() + seconds, False
        self._socks, self._lock = [], threading.Lock()
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock) -> None:
        with self._lock:
            self._socks.append(sock)
        if self.expired:
            self.expire()

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for s in self._socks:
                with contextlib.suppress(OSError):  # the plain socket's shutdown, also under
                    socket.socket.shutdown(s, socket.SHUT_RDWR)  # TLS: wakes a blocked recv


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies, redirects, file://), whose HTTP(S) connections are
    handed to `watchdog` as soon as they are connected."""

    def watched(cls):
        class Watched(cls):
            def connect(self):
                super().connect()
                watchdog.watch(self.sock)
        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context)

    return urllib.request.build_opener(HTTP, HTTPS)


def _download(url: str, res: Resource, progress: bool) -> bytes:
    """The bytes at `url`, at most res.max_download of them, within deadline_for(res)."""
    from tqdm.auto import tqdm

    bound, deadline = res.max_download, deadline_for(res)
    timeout = min(CONNECT_TIMEOUT, deadline)
    watchdog = _Watchdog(deadline)
    chunks, got = [], 0
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "vae_utils (AEVB tutorial)"})
        with _opener(watchdog).open(req, timeout=timeout) as r:
            length = (r.headers.get("Content-Length") or "").strip()
            total = int(length) if length.isdigit() else None
            if total is not None and total > bound:
                raise DataError(f"the server announces {total} bytes, more than the {bound} "
                                f"that {res.name} can take; not downloaded")
            read = getattr(r, "read1", r.read)  # read1: whatever has arrived, without waiting
            with tqdm(total=total, unit="B", unit_scale=True, desc=res.name,
                      disable=not progress, leave=False) as bar:
                while chunk := read(1 << 16):
                    chunks.append(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                    if got > bound:
                        raise DataError(f"the server sent more than the {bound} bytes that "
                                        f"{res.name} can take; stopped reading there")
                    if time.monotonic() > watchdog.end:
                        watchdog.expire()
                        break
    except Exception as e:
        if isinstance(getattr(e, "reason", e), TimeoutError) and not watchdog.expired:
            raise DataError(f"timed out after {timeout:g} s without an answer from the "
                            "server") from None
        if not watchdog.expired:
            raise
    finally:
        watchdog._timer.cancel()
    if watchdog.expired:
        raise DataError(f"timed out after {deadline:g} s, the time allowed for the whole file "
                        f"({got} bytes had arrived)")
    if total is not None and got != total:
        raise DataError(f"download stopped after {got} of {total} bytes")
    return b"".join(chunks)


def _reason(e: Exception) -> str:
    """A short, readable, one-line reason for a failed download."""
    if isinstance(e, urllib.error.HTTPError):
        e.close()  # it holds the error page's open response
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return " ".join(str(e).split()) or type(e).__name__


def _cached_copy(path: Path, res: Resource) -> str | None:
    """None if `path` holds the good file, else what is wrong with it."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != res.size:
        return f"{size} bytes"
    digest = _sha256(path.read_bytes())
    return None if digest == res.sha256 else f"{size} bytes with sha256 {digest}"


def fetch(res: Resource, progress: bool = True) -> Path:
    """Return the path of a verified local copy of `res`, downloading it if needed.

    The mirrors (urls_for) are tried in turn; each fallback is announced on one line of stderr.
    If all fail, DataError lists every URL with its reason and what to do.
    """
    path = data_dir() / res.folder / res.stored_name
    cached = _cached_copy(path, res)
    if cached is None:
        return path
    urls, errors = urls_for(res), []
    for i, url in enumerate(urls):
        try:
            data = _decode(res, _download(url, res, progress))
        except (OSError, http.client.HTTPException, ValueError, DataError) as e:
            # OSError: URLError, HTTPError, refused connections; ValueError: a malformed URL
            reason = _reason(e)
            errors.append(f"  {url}: {reason}")
            if i + 1 < len(urls):
                print(f"{res.folder}/{res.name}: {url} failed ({reason}); trying {urls[i + 1]}",
                      file=sys.stderr, flush=True)
            continue
        if cached != "missing":
            print(f"{res.folder}/{res.stored_name}: the cached copy was corrupt ({cached}); replaced by "
                  f"a good one from {url}", file=sys.stderr, flush=True)
        atomic_write(path, data)
        return path
    expected = f"{res.size} bytes with sha256 {res.sha256}" + " once decompressed" * res.gzipped
    kept = (f"Nothing was written to {path.parent}." if cached == "missing" else
            f"The cached copy {path} is corrupt ({cached}); it was left as it is, and will be "
            "replaced once a good copy arrives (or delete it yourself).")
    raise DataError(
        f"could not get a good copy of {res.name} ({res.folder}: expected {expected}); "
        "every source failed:\n" + "\n".join(errors) + f"\n{kept} Check your internet "
        "connection and try again; or download the file yourself from one of the URLs above and "
        f"put it (decompressed, as {res.stored_name}) in {path.parent}; or set VAE_UTILS_MIRRORS "
        "to a mirror that serves mnist/ and frey/.")
