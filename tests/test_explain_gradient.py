"""Gradient analysis: autograd against a closed form, correlation ranges, head geometry, figure size."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import tpose
from tpose.explain.figures import grid_size
from tpose.explain.gradient import gradient_attention_correlation, gradient_figure, head_tokens

from .conftest import tiny_model

SIZE = (64, 48)


def _linearised_h_model(crop: torch.Tensor) -> nn.Module:
    """An H model whose last layer is attention + residual only (no LayerNorm, constant FFN), 1x1 head.

    ``reduce`` is rescaled so the tokens of ``crop`` have unit spread: the random backbone's raw features
    are so large that the softmax would saturate to one-hot rows and most gradients would vanish.
    """
    model = tiny_model("transpose_h_s", num_heads=1, input_size=SIZE)
    with torch.no_grad():
        model.reduce.weight /= model.features(crop).std()
    layer = model.global_encoder.layers[-1]
    layer.norm1 = nn.Identity()
    layer.norm2 = nn.Identity()
    with torch.no_grad():
        layer.linear1.weight.zero_()
        layer.linear1.bias.zero_()
        layer.self_attn.in_proj_bias.normal_(0, 0.1)
        model.final_layer.weight.normal_(0, 0.1)
    return model


def test_gradient_matches_the_closed_form():
    torch.manual_seed(1)
    crop = torch.randn(1, 3, 64, 48)
    model = _linearised_h_model(crop)
    layer = model.global_encoder.layers[-1]
    seen = {}
    handle = layer.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0].detach(), pos=args[1].detach()))
    try:
        res = gradient_attention_correlation(model, crop, keypoints=[0, 9])
    finally:
        handle.remove()
    x, pos = seen["x"][0].double(), seen["pos"][0].double()  # [L, d]
    d = x.shape[1]
    w, b = layer.self_attn.in_proj_weight.detach().double(), layer.self_attn.in_proj_bias.detach().double()
    wq, wk, wv = w[:d], w[d : 2 * d], w[2 * d :]
    bq, bk, bv = b[:d], b[d : 2 * d], b[2 * d :]
    wo = layer.self_attn.out_proj.weight.detach().double()
    q = (x + pos) @ wq.T + bq
    k = (x + pos) @ wk.T + bk
    v = x @ wv.T + bv
    attn = torch.softmax(q @ k.T / math.sqrt(d), dim=-1)
    np.testing.assert_allclose(res.attention, attn[res.tokens].numpy(), atol=1e-5)
    assert res.attention.max() < 0.5, "softmax saturated: the check below would be vacuous"
    for n, kp in enumerate(res.keypoints):
        i = int(res.tokens[n])
        wf = model.final_layer.weight.detach().double()[kp, :, 0, 0]  # head: h = wf . x*_i + c
        out_i = attn[i] @ v
        back = wo.T @ wf  # Wo^T wf
        # for j != i: dh/dx_j = A_ij [Wv^T Wo^T wf + (Wk^T q_i / sqrt(d)) ((v_j - o_i) . Wo^T wf)]
        expected = attn[i][:, None] * (
            (wv.T @ back)[None, :] + ((v - out_i) @ back)[:, None] * (wk.T @ q[i])[None, :] / math.sqrt(d)
        )
        others = np.arange(x.shape[0]) != i
        np.testing.assert_allclose(res.grad_norm[n][others], expected.norm(dim=1).numpy()[others], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(res.grad_sum[n][others], expected.sum(dim=1).numpy()[others], rtol=1e-4, atol=1e-8)
        assert res.local[n].sum() == 1 and res.local[n][i]


@pytest.fixture(scope="module")
def r_result():
    model = tiny_model("transpose_r_a3", input_size=SIZE)
    model.train()
    torch.manual_seed(2)
    crop = torch.randn(1, 3, 64, 48)
    return model, crop, gradient_attention_correlation(model, crop)


def test_correlations_are_finite_and_in_range(r_result):
    model, _, res = r_result
    assert model.training, "the model's mode must be restored"
    assert res.keypoints.tolist() == list(range(17))
    assert res.attention.shape == res.grad_norm.shape == res.grad_sum.shape == (17, 48)
    np.testing.assert_allclose(res.attention.sum(axis=1), 1.0, atol=1e-5)
    for name in ("pearson_norm", "spearman_norm", "pearson_sum", "spearman_sum",
                 "pearson_norm_nonlocal", "spearman_norm_nonlocal"):
        values = getattr(res, name)
        assert values.shape == (17,)
        assert np.isfinite(values).all(), name
        assert ((values >= -1) & (values <= 1)).all(), name
    means = res.mean()
    assert all(-1 <= v <= 1 for v in means.values())
    report = json.loads(json.dumps(res.to_dict(tpose.data.keypoint_sets.COCO17.names)))
    assert report["keypoints"][9]["name"] == "left_wrist"
    assert report["mean"]["pearson_norm"] == pytest.approx(means["pearson_norm"])


def test_subset_of_keypoints_and_head(r_result):
    model, crop, full = r_result
    res = gradient_attention_correlation(model, crop, keypoints=[4, 0], head=1)
    assert res.keypoints.tolist() == [4, 0] and res.head == "head 1"
    np.testing.assert_allclose(res.grad_norm, full.grad_norm[[4, 0]], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="keypoint indices"):
        gradient_attention_correlation(model, crop, keypoints=[17])
    with pytest.raises(ValueError, match="head 5"):
        gradient_attention_correlation(model, crop, keypoints=[0], head=5)


def test_head_tokens_geometry(r_result):
    model, _, _ = r_result
    # a 4x4 stride-2 deconvolution with padding 1: even output 2m reads inputs m-1, m; odd 2m+1 reads m, m+1
    mask = head_tokens(model, (2, 3), (8, 6)).reshape(8, 6)
    assert sorted(zip(*np.nonzero(mask), strict=True)) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    corner = head_tokens(model, (0, 0), (8, 6)).reshape(8, 6)
    assert sorted(zip(*np.nonzero(corner), strict=True)) == [(0, 0)]
    h_model = tiny_model("transpose_h_s", num_heads=1, input_size=SIZE)
    assert np.flatnonzero(head_tokens(h_model, (5, 7), (16, 12))).tolist() == [7 * 12 + 5]


def test_gradient_figure_size(r_result):
    _, crop, res = r_result
    fig = gradient_figure(crop, res, tpose.data.keypoint_sets.COCO17.names)
    assert fig.shape[:2] == grid_size(3, 18, (64, 48)) and fig.dtype == np.uint8
