"""The scorer reads the latent factors only through their summaries (issue 9)."""

from __future__ import annotations

import numpy as np
import torch

from enf_core.features import PORTRAIT_DIM, PORTRAIT_SLICES, VIDEO_DIM, VIDEO_SLICES
from enf_core.latent import LATENT_DIM
from models.scorer import ScorerConfig, ScorerNet, latent_factor_mask


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.tensor(rng.random((64, PORTRAIT_DIM)), dtype=torch.float32),
            torch.tensor(rng.random((64, VIDEO_DIM)), dtype=torch.float32))


def _permute_factors(p: torch.Tensor, v: torch.Tensor, perm: np.ndarray
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The same relabelling of the factors on both sides: every dot product, cosine and
    predicted engagement is unchanged."""
    p, v = p.clone(), v.clone()
    for sl in (PORTRAIT_SLICES["latent"], PORTRAIT_SLICES["recent_negative"],
               PORTRAIT_SLICES["recent_positive"]):
        cols = np.arange(sl.start, sl.start + LATENT_DIM)
        p[:, cols] = p[:, cols[perm]]
    vl = VIDEO_SLICES["latent"]
    cols = np.arange(vl.start, vl.start + LATENT_DIM)
    v[:, cols] = v[:, cols[perm]]
    return p, v


def test_mask_covers_exactly_the_raw_factor_columns() -> None:
    m = latent_factor_mask()
    assert int((m == 0).sum()) == 5 * LATENT_DIM  # user, 2 centroids, video, w ⊙ v
    bias = PORTRAIT_SLICES["latent"].start + LATENT_DIM
    assert m[bias] == 1 and m[PORTRAIT_DIM + VIDEO_SLICES["latent"].start + LATENT_DIM] == 1
    assert m[PORTRAIT_SLICES["history"]].eq(1).all()


def test_scores_depend_on_the_latents_only_through_their_summaries() -> None:
    p, v = _inputs()
    perm = np.random.default_rng(1).permutation(LATENT_DIM)
    p2, v2 = _permute_factors(p, v, perm)
    torch.manual_seed(0)
    net = ScorerNet().eval()
    net.set_normalization(p, v)
    with torch.no_grad():
        a, b = net(p, v), net(p2, v2)
        # the latents do move the score (through predicted engagement, dots, cosines)
        shifted = p.clone()
        shifted[:, PORTRAIT_SLICES["latent"]] *= 3.0
        c = net(shifted, v)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-5)
    assert (c[0] - a[0]).abs().max() > 1e-4
    torch.manual_seed(0)
    raw = ScorerNet(ScorerConfig(raw_latents=True)).eval()
    raw.set_normalization(p, v)
    with torch.no_grad():
        assert (raw(p, v)[0] - raw(p2, v2)[0]).abs().max() > 1e-4
