"""agan.evaluate: the metric protocol against independent computations, pairing, folder/model evaluation."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from agan.evaluate import (EvalResult, evaluate_folders, evaluate_model, find_splits, image_id, pair_by_id,
                           psnr, rgb_to_y, score_pair, ssim, to_uint8_output)


# ---------------------------------------------------------------------------------------------- helpers
def ssim_reference(a, b, data_range=255.0, win=7, k1=0.01, k2=0.03):
    """Wang et al. 2004 SSIM written out directly: every valid win x win window, uniform weights,
    sample (N-1) variances/covariance, mean of the SSIM map."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    wa = np.lib.stride_tricks.sliding_window_view(a, (win, win)).reshape(*np.subtract(a.shape, win - 1), -1)
    wb = np.lib.stride_tricks.sliding_window_view(b, (win, win)).reshape(*np.subtract(b.shape, win - 1), -1)
    n = win * win
    mx, my = wa.mean(-1), wb.mean(-1)
    vx = ((wa - mx[..., None]) ** 2).sum(-1) / (n - 1)
    vy = ((wb - my[..., None]) ** 2).sum(-1) / (n - 1)
    cxy = ((wa - mx[..., None]) * (wb - my[..., None])).sum(-1) / (n - 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def rand_img(rng, h, w):
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def noisy(rng, img, sigma):
    return np.clip(img.astype(np.float64) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------- pixels
def test_rgb_to_y_values():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(px, "full")[0], [76.245, 149.685, 29.07, 255.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(rgb_to_y(px, "matlab")[0],
                               [16 + 65.481, 16 + 128.553, 16 + 24.966, 235.0, 16.0], atol=1e-9)
    # quantised as the libraries return uint8: OpenCV 14-bit fixed point, MATLAB rounding
    assert rgb_to_y(px, "full", quantize=True)[0].tolist() == [76, 150, 29, 255, 0]
    assert rgb_to_y(px, "matlab", quantize=True)[0].tolist() == [81, 145, 41, 235, 16]
    assert rgb_to_y(px).dtype == np.float64


def test_quantized_y_is_within_half_a_level():
    img = rand_img(np.random.default_rng(1), 40, 40)
    exact = rgb_to_y(img, "full")
    q = rgb_to_y(img, "full", quantize=True)
    # OpenCV's 14-bit coefficients differ from 0.299/0.587/0.114 by < 2.5e-5 each
    fixed_point_error = 255 * (abs(4899 / 16384 - 0.299) + abs(9617 / 16384 - 0.587) + abs(1868 / 16384 - 0.114))
    assert fixed_point_error < 0.013
    assert np.all(np.abs(q - exact) <= 0.5 + fixed_point_error)
    assert np.mean(q == np.round(exact)) > 0.99
    assert np.all(q == np.round(q))


def test_cast_clip_and_wrap_on_a_crafted_case():
    x = np.array([[[1.01, -0.01, 0.5], [1.0, 0.0, 0.999], [2.0, -1.0, 0.1]]], np.float32)  # 1x3x3
    clip = to_uint8_output(x, "clip")
    wrap = to_uint8_output(x, "wrap")
    assert clip.dtype == wrap.dtype == np.uint8
    assert clip.tolist() == [[[255, 0, 128], [255, 0, 255], [255, 0, 26]]]
    # wrap: x*255 in float32, truncate toward zero, modulo 256:
    # 1.01 -> 257.55 -> 257 -> 1; -0.01 -> -2.55 -> -2 -> 254; 0.5 -> 127.5 -> 127; 2 -> 510 -> 254; -1 -> -255 -> 1
    assert wrap.tolist() == [[[1, 254, 127], [255, 0, 254], [254, 1, 25]]]
    u = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    assert to_uint8_output(u, "wrap") is u  # uint8 passes through


def test_cast_rejects_unknown():
    with pytest.raises(ValueError, match="cast"):
        to_uint8_output(np.zeros((4, 4, 3)), "round")


# ---------------------------------------------------------------------------------------------- metrics
def test_psnr_hand_computed():
    gt = np.zeros((8, 8, 3), np.uint8)
    out = np.full((8, 8, 3), 10, np.uint8)  # Y = 10 everywhere: MSE 100
    p, s = score_pair(out, gt)
    assert p == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-12)
    assert psnr(gt, gt) == math.inf


def test_ssim_matches_an_independent_implementation():
    rng = np.random.default_rng(2)
    a = rand_img(rng, 24, 31)
    b = noisy(rng, a, 20)
    ya, yb = rgb_to_y(a, quantize=True), rgb_to_y(b, quantize=True)
    ref = ssim_reference(ya, yb)
    assert ssim(ya, yb) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert 0.2 < ref < 0.99
    # RGB: mean of the per-channel SSIMs
    ref_rgb = np.mean([ssim_reference(a[..., c], b[..., c]) for c in range(3)])
    assert ssim(a, b) == pytest.approx(ref_rgb, rel=1e-10)


@pytest.mark.parametrize("color", ["y", "y-matlab", "rgb"])
def test_score_pair_against_independent_computation(color):
    rng = np.random.default_rng(3)
    gt = rand_img(rng, 26, 31)  # cropped to 24 x 28
    out = noisy(rng, gt, 12).astype(np.float32) / 255  # a float output in [0, 1]
    p, s = score_pair(out, gt, color=color)
    o8 = np.rint(np.clip(out, 0, 1) * 255)[:24, :28]
    g = gt[:24, :28].astype(np.float64)
    if color == "rgb":
        mse = np.mean((o8 - g) ** 2)
        ref_s = np.mean([ssim_reference(o8[..., c], g[..., c]) for c in range(3)])
    else:
        if color == "y":  # OpenCV: round(0.299 R + 0.587 G + 0.114 B) in 14-bit fixed point
            w = np.array([4899, 9617, 1868])
            yo = (o8 @ w + 8192) // 16384
            yg = (g @ w + 8192) // 16384
        else:
            w = np.array([65.481, 128.553, 24.966])
            yo = np.floor(16 + o8 @ w / 255 + 0.5)
            yg = np.floor(16 + g @ w / 255 + 0.5)
        mse = np.mean((yo - yg) ** 2)
        ref_s = ssim_reference(yo, yg)
    assert p == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-9)
    assert s == pytest.approx(ref_s, abs=1e-10)


def test_score_pair_crops_to_multiple_of_4_and_checks_sizes():
    rng = np.random.default_rng(4)
    gt = rand_img(rng, 18, 21)
    out = gt.copy()
    out[16:, :] = 0  # only in the cropped-away margin (16 x 20 is kept)
    out[:, 20:] = 255
    assert score_pair(out, gt)[0] == math.inf
    assert score_pair(out, gt)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in size"):
        score_pair(gt[:12], gt)


def test_score_pair_wrap_changes_the_score_of_out_of_range_outputs():
    rng = np.random.default_rng(5)
    gt = rand_img(rng, 16, 16)
    out = gt.astype(np.float32) / 255
    out[0, 0] = 1.02  # 260.1 -> 4 with wrap, 255 with clip
    assert score_pair(out, gt, cast="wrap")[0] < score_pair(out, gt, cast="clip")[0]
    t = torch.from_numpy(out).permute(2, 0, 1)  # tensors are accepted too
    assert score_pair(t, gt) == score_pair(out, gt)
