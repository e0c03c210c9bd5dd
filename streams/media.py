"""Which video a record's ``uri`` may make the worker open: the media policy.

A video record comes from any producer, and its ``uri`` used to be opened as
given: ``file:///etc/passwd``, ``/proc/self/environ``, ``/dev/zero``,
``../../etc/hostname``, ``frames:///etc/passwd#0``, and any http / ftp / tcp URL
(a server-side request forgery; one URL that never answered stalled the video
path for minutes). The policy, applied before anything is opened:

* schemes: a plain path, ``file://`` and ``frames://<path>#<row>``; ``http(s)``
  only when enabled (``ENF_MEDIA_HTTP``) and only to the hosts listed in
  ``ENF_MEDIA_HTTP_HOSTS``, fetched with connect / read timeouts and a size cap,
  without following redirects, in a thread (never on the event loop);
* files: only under the media roots (``ENF_MEDIA_ROOT``, ``:``-separated), after
  resolving ``..`` and every symlink; only regular files (no devices, fifos,
  sockets), never under ``/proc``, ``/sys`` or ``/dev``. No root configured: no
  file is opened (inline ``frame_features`` and titles still work).

What is stored in Redis for a refused or failed video says only ``not allowed``
or ``cannot decode``: the reason (which could tell whether a file exists) goes
to the worker's log only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["CANNOT_DECODE", "NOT_ALLOWED", "MediaNotAllowed", "MediaPolicy", "ResolvedMedia",
           "roots_for"]

NOT_ALLOWED = "not allowed"
CANNOT_DECODE = "cannot decode"
_NEVER = (Path("/proc"), Path("/sys"), Path("/dev"))


class MediaNotAllowed(ValueError):
    """A uri the policy refuses; ``detail`` is for the log, never for Redis."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(NOT_ALLOWED)


@dataclass(frozen=True, slots=True)
class ResolvedMedia:
    """A vetted uri: ``kind`` file | frames | http; ``uri`` is what may be opened
    (a canonical absolute path, ``frames://<abs path>#<row>``, or the URL)."""

    kind: str
    uri: str


@dataclass(frozen=True)
class MediaPolicy:
    """What the Video Agent may open (README: ``ENF_MEDIA_*``)."""

    roots: tuple[str, ...] = ()  # allowed directories; empty: no file is opened
    allow_http: bool = False
    http_hosts: tuple[str, ...] = ()  # exact host names (or host:port) allowed when enabled
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_bytes: int = 200 * 1024 * 1024  # cap of one downloaded video

    @classmethod
    def from_settings(cls, root: str, *, allow_http: bool = False, http_hosts: str = "",
                      connect_timeout_s: float = 5.0, read_timeout_s: float = 10.0,
                      max_bytes: int = 200 * 1024 * 1024) -> MediaPolicy:
        roots = tuple(str(Path(r).expanduser().resolve()) for r in root.split(os.pathsep)
                      if r.strip())
        hosts = tuple(h.strip().lower() for h in http_hosts.split(",") if h.strip())
        return cls(roots, allow_http, hosts, connect_timeout_s, read_timeout_s, max_bytes)

    # ------------------------------------------------------------ resolving
    def resolve(self, uri: str) -> ResolvedMedia:
        """The vetted form of ``uri``, or MediaNotAllowed."""
        if any(ord(ch) < 32 for ch in uri):
            raise MediaNotAllowed("control characters in the uri")
        parsed = urlparse(uri)
        scheme = parsed.scheme.lower()
        if scheme in ("http", "https"):
            return ResolvedMedia("http", self._check_url(uri))
        if scheme == "frames":
            if not parsed.fragment:
                raise MediaNotAllowed("frames:// needs #<row>")
            try:
                row = int(parsed.fragment)
            except ValueError:
                raise MediaNotAllowed("frames:// row is not an integer") from None
            path = self._check_file(unquote(parsed.netloc + parsed.path), allow_dir=True)
            if Path(path).is_dir():
                path = self._check_file(str(Path(path) / "frames.npy"))
            return ResolvedMedia("frames", f"frames://{path}#{row}")
        if scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise MediaNotAllowed("file:// on another host")
            return ResolvedMedia("file", self._check_file(unquote(parsed.path)))
        if scheme:
            raise MediaNotAllowed(f"scheme {scheme!r} is not allowed")
        return ResolvedMedia("file", self._check_file(uri))

    def _check_file(self, raw: str, *, allow_dir: bool = False) -> str:
        if not self.roots:
            raise MediaNotAllowed("no media root is configured (ENF_MEDIA_ROOT)")
        if not raw or not os.path.isabs(raw):
            raise MediaNotAllowed("a media path must be absolute")
        path = Path(os.path.realpath(raw))  # resolves .. and every symlink
        if any(path == p or p in path.parents for p in _NEVER):
            raise MediaNotAllowed(f"{path} is a system path")
        if not any(path == Path(r) or Path(r) in path.parents for r in self.roots):
            raise MediaNotAllowed(f"{path} is outside the media roots")
        try:
            mode = path.stat().st_mode
        except OSError:
            # The same words as for an existing file outside the roots: no existence leak.
            raise MediaNotAllowed(f"{path} cannot be opened") from None
        if not (stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode))):
            raise MediaNotAllowed(f"{path} is not a regular file")
        return str(path)

    def _check_url(self, uri: str) -> str:
        if not self.allow_http:
            raise MediaNotAllowed("http(s) media is disabled (ENF_MEDIA_HTTP)")
        parsed = urlparse(uri)
        host = (parsed.hostname or "").lower()
        with_port = f"{host}:{parsed.port}" if parsed.port else host
        if not host or (host not in self.http_hosts and with_port not in self.http_hosts):
            raise MediaNotAllowed(f"host {host!r} is not in ENF_MEDIA_HTTP_HOSTS")
        if parsed.username or parsed.password:
            raise MediaNotAllowed("credentials in a media URL")
        return uri

    # ------------------------------------------------------------ fetching
    def fetch(self, url: str, directory: str | None = None) -> str:
        """Download an allowed URL to a temporary file (the caller removes it).

        Blocking: run it in a thread. The connect and each read have their own
        timeout and the whole download a deadline (``connect_timeout_s +
        6 × read_timeout_s``); a redirect is refused (it could point anywhere).
        Raises MediaNotAllowed, OSError or TimeoutError.
        """
        self._check_url(url)
        parsed = urlparse(url)
        https = parsed.scheme == "https"
        cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
        conn = cls(parsed.hostname or "", parsed.port, timeout=self.connect_timeout_s)
        fd, path = tempfile.mkstemp(prefix="enf-media-", suffix=".video", dir=directory)
        os.close(fd)
        deadline = time.monotonic() + self.connect_timeout_s + 6 * self.read_timeout_s
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.read_timeout_s)
            target = parsed.path or "/"
            conn.request("GET", target + (f"?{parsed.query}" if parsed.query else ""))
            resp = conn.getresponse()
            if 300 <= resp.status < 400:
                raise MediaNotAllowed(f"HTTP {resp.status}: redirects are not followed")
            if resp.status != 200:
                raise OSError(f"HTTP {resp.status}")
            length = resp.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise MediaNotAllowed(f"{length} bytes is above the size cap")
            total = 0
            with open(path, "wb") as out:
                while chunk := resp.read1(1 << 16):  # what arrived, never waits for 64 KiB
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise MediaNotAllowed("download above the size cap")
                    if time.monotonic() > deadline:
                        raise TimeoutError("download took too long")
                    out.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        finally:
            conn.close()
        return path


def roots_for(uris: Iterable[str | None], *extra: str | Path) -> str:
    """An ``ENF_MEDIA_ROOT`` value covering exactly the directories these uris
    name (the demo's and the A/B's own data and clips), plus ``extra`` and
    whatever ``ENF_MEDIA_ROOT`` the user already set."""
    roots: dict[str, None] = {}
    given = os.environ.get("ENF_MEDIA_ROOT", "")
    for r in [*given.split(os.pathsep), *map(str, extra)]:
        if r.strip():
            roots[str(Path(r).resolve())] = None
    for uri in uris:
        if not uri:
            continue
        parsed = urlparse(uri)
        if parsed.scheme == "frames":
            path = Path(unquote(parsed.netloc + parsed.path))
        elif parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path))
        else:
            continue
        path = path.resolve()
        roots[str(path if path.is_dir() else path.parent)] = None
    return os.pathsep.join(roots)
