from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from enf_core.features import PORTRAIT_DIM, VIDEO_DIM
from models.export import onnx_parity
from models.manifest import read_manifest
from models.scorer import ScorerNet


def test_onnx_equals_torch_within_1e5(tiny_model_dir: Path) -> None:
    m = read_manifest(tiny_model_dir)
    model = ScorerNet()
    model.load_state_dict(torch.load(tiny_model_dir / m["files"]["torch"]["path"],
                                     weights_only=True))
    assert onnx_parity(model, tiny_model_dir / m["files"]["scorer"]["path"], n=2048,
                       seed=1) <= 1e-5
    assert m["parity_max_abs_diff"] <= 1e-5
    # the indexed graph computes the same rows
    rng = np.random.default_rng(0)
    p = rng.random((3, PORTRAIT_DIM), dtype=np.float32)
    table = rng.random((10, VIDEO_DIM), dtype=np.float32)
    pi, vi = np.array([0, 2, 1, 1]), np.array([9, 0, 3, 3])
    sess = ort.InferenceSession(str(tiny_model_dir / m["files"]["scorer_indexed"]["path"]))
    got = sess.run(None, {"portrait": p, "portrait_index": pi, "video_table": table,
                          "video_index": vi})
    with torch.no_grad():
        ref = model(torch.from_numpy(p[pi]), torch.from_numpy(table[vi]))
    assert len(got) == len(ref) == 3
    for g, t in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, t.numpy(), atol=1e-5)


def test_manifest_has_the_contract_fields(tiny_model_dir: Path) -> None:
    m = read_manifest(tiny_model_dir)
    for key in ("name", "version", "created", "opset", "feature_layout_version", "inputs",
                "outputs", "training_data_hash", "metrics"):
        assert key in m
    assert [i["name"] for i in m["inputs"]] == ["portrait", "video"]
    assert [o["name"] for o in m["outputs"]] == ["p_negative", "reason_probs", "p_dislike"]
    assert m["outputs"][1]["order"] == ["negative_event", "vulgar_or_value_conflict", "boring",
                                         "visual_discomfort"]
    assert m["version"] in m["files"]["scorer"]["path"]
