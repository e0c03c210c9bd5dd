"""What a replay sends: exactly the data's events, with ids derived from the data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from enf_core.data.replay_plan import ReplayConfig, ids_digest, plan_replay
from enf_core.data.schema import Dataset, read_dataset
from enf_core.data.simulate import SimulationConfig, simulate
from enf_core.events import VideoEvent, decode_events


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    out = tmp_path_factory.mktemp("replay")
    simulate(out, SimulationConfig(users=30, videos=90, seed=5))
    return read_dataset(out)


def expected_ids(ds: Dataset) -> list[str]:
    """The ids a replay must produce, computed straight from the tables."""
    rows = ds.interactions.to_pylist()
    ids = [f"v:{v}" for v in ds.videos.column("video_id").to_pylist()]
    ids += [f"u:{u}" for u in sorted({r["user_id"] for r in rows})]
    pages = Counter(r["request_id"] for r in rows)
    ids += [f"c:{req}" for req in pages]
    ids += [f"i:{req}:{k}" for req, n in pages.items() for k in range(n)]
    ids += [f"w:{r['user_id']}:{r['video_id']}:{r['ts']}" for r in rows]
    ids += [f"f:{r['user_id']}:{r['video_id']}:{r['ts']}" for r in rows
            if r["explicit_negative"]]
    return ids


def test_plan_is_exactly_the_data(dataset: Dataset) -> None:
    plan = plan_replay(dataset)
    ids = plan.event_ids()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(expected_ids(dataset))
    assert ids_digest(ids) == ids_digest(expected_ids(dataset))
    n = dataset.interactions.num_rows
    assert plan.counts["impression"] == plan.counts["watch"] == n
    assert plan.counts["video"] == dataset.videos.num_rows
    assert plan.counts["user"] == len(set(dataset.interactions.column("user_id").to_pylist()))
    assert plan.counts["feedback"] == sum(dataset.interactions.column("explicit_negative")
                                          .to_pylist())


def test_messages_decode_and_are_in_time_order(dataset: Dataset) -> None:
    plan = plan_replay(dataset)
    decoded = []
    for m in plan:
        events = decode_events(orjson.dumps(m.payload))
        assert tuple(e.event_id for e in events) == m.event_ids
        decoded.extend(events)
    videos = [e for e in decoded if isinstance(e, VideoEvent)]
    assert videos and all(e.uri.startswith("frames://") or e.uri.endswith(".mp4")
                          for e in videos)
    first_user = next(i for i, e in enumerate(decoded) if not isinstance(e, VideoEvent))
    assert all(isinstance(e, VideoEvent) for e in decoded[:first_user])
    ts = [e.ts for e in decoded[first_user:]]
    assert ts == sorted(ts)
    # every candidates request comes before its page and contains the page's videos
    seen: dict[str, set[str]] = {}
    for e in decoded:
        if e.type == "candidates":
            seen[e.request_id] = set(e.video_ids)
        elif e.type == "impression":
            assert e.video_id in seen[e.request_id]


def test_frames_uri_resolves(dataset: Dataset) -> None:
    plan = plan_replay(dataset)
    uri = next(m.payload["uri"] for m in plan if m.payload["uri"].startswith("frames://"))
    path, row = uri.removeprefix("frames://").split("#")
    assert Path(path) == dataset.frames_path and 0 <= int(row) < dataset.videos.num_rows


def test_limit_keeps_first_interactions_and_their_videos(dataset: Dataset) -> None:
    plan = plan_replay(dataset, ReplayConfig(limit=25, extra_candidates=3))
    assert plan.counts["impression"] == 25 and plan.counts["watch"] == 25
    mentioned = {v for m in plan if m.type == "candidates" for v in m.payload["video_ids"]}
    sent = {m.key for m in plan if m.type == "video"}
    assert sent == mentioned


def test_derived_pages_when_data_has_no_request_ids(tmp_path: Path) -> None:
    from enf_core.data.loaders import load_dataset
    from enf_core.data.loaders.common import default_shared_data

    if not default_shared_data("kuairand").is_dir():
        pytest.skip("shared/data/kuairand absent")
    load_dataset("kuairand", tmp_path, default_shared_data("kuairand"))
    ds = read_dataset(tmp_path)
    plan = plan_replay(ds, ReplayConfig(page_size=4, limit=None))
    assert plan.counts["impression"] == 200
    assert plan.counts["watch"] == 182  # 18 rows have no duration
    pages = [m for m in plan if m.type == "impression"]
    assert all(len(m.payload["items"]) <= 4 for m in pages)
    assert all(m.payload["duration_ms"] >= 1 for m in plan if m.type == "video")


def test_every_planned_message_is_keyed_by_its_records_id(dataset: Dataset) -> None:
    """The worker dead-letters a key that is not the record's user_id / video_id,
    and an event outside its timestamp window: a replay sends neither."""
    from enf_core.events import check_key

    for m in plan_replay(dataset, ReplayConfig(seed=1)).messages:
        check_key(m.key.encode(), decode_events(orjson.dumps(m.payload)))
