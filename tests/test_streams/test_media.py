"""The media policy: what a video record's uri may open (streams.media)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.media import MediaNotAllowed, MediaPolicy


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "clip.mp4").write_bytes(b"not really a video")
    (media / "sub" / "frames.npy").write_bytes(b"x")
    (media / "escape").symlink_to("/etc/passwd")
    (media / "inside").symlink_to(media / "clip.mp4")
    os.mkfifo(media / "fifo")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    return media


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd", "/etc/shadow", "/proc/self/environ", "/dev/zero",
    "../../../../etc/hostname", "clip.mp4", "frames:///etc/passwd#0",
    "http://127.0.0.1:9/x", "https://example.com/v.mp4", "ftp://example.com/v",
    "tcp://127.0.0.1:9", "rtsp://cam/1", "file://otherhost/etc/passwd", "data:,x",
])
def test_hostile_uris_are_not_allowed(root: Path, uri: str) -> None:
    policy = MediaPolicy.from_settings(str(root))
    with pytest.raises(MediaNotAllowed) as info:
        policy.resolve(uri)
    assert str(info.value) == "not allowed"


def test_paths_are_resolved_before_the_root_check(root: Path) -> None:
    policy = MediaPolicy.from_settings(str(root))
    for uri in (f"{root}/../outside.mp4", f"{root}/escape", f"{root}/fifo", f"{root}/missing.mp4",
                f"frames://{root}/escape#0", f"{root}/sub/../../outside.mp4", f"{root}/a\nb"):
        with pytest.raises(MediaNotAllowed):
            policy.resolve(uri)
    assert policy.resolve(f"{root}/inside").uri == str(root / "clip.mp4")
    assert policy.resolve(f"file://{root}/sub/../clip.mp4").uri == str(root / "clip.mp4")
    assert policy.resolve(f"frames://{root}/sub#3").uri == f"frames://{root}/sub/frames.npy#3"
    assert policy.resolve(f"frames://{root}/sub/frames.npy#0").kind == "frames"


def test_no_root_opens_nothing(root: Path) -> None:
    with pytest.raises(MediaNotAllowed):
        MediaPolicy().resolve(str(root / "clip.mp4"))


def test_http_only_when_enabled_and_only_listed_hosts() -> None:
    off = MediaPolicy.from_settings("", http_hosts="media.example")
    with pytest.raises(MediaNotAllowed):
        off.resolve("https://media.example/v.mp4")
    on = MediaPolicy.from_settings("", allow_http=True, http_hosts="media.example, cdn:8080")
    assert on.resolve("https://media.example/v.mp4").kind == "http"
    assert on.resolve("http://cdn:8080/v.mp4").kind == "http"
    for uri in ("http://cdn/v.mp4", "http://169.254.169.254/latest", "https://evil.example/v",
                "https://user:pw@media.example/v"):
        with pytest.raises(MediaNotAllowed):
            on.resolve(uri)


def test_roots_for_covers_exactly_the_named_directories(root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.media import roots_for

    monkeypatch.delenv("ENF_MEDIA_ROOT", raising=False)
    value = roots_for([f"frames://{root}/sub/frames.npy#3", str(root / "clip.mp4"), None, "",
                       "https://cdn/x.mp4"], tmp_path / "extra")
    assert value.split(os.pathsep) == [str(tmp_path / "extra"), str(root / "sub"), str(root)]
    policy = MediaPolicy.from_settings(value)
    assert policy.resolve(str(root / "clip.mp4")).kind == "file"
    with pytest.raises(MediaNotAllowed):
        policy.resolve(str(tmp_path / "outside.mp4"))
