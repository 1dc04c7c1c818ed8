import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from lensr.errors import LensrError
from lensr.eval.metrics import (
    PSNR_CAP_DB,
    mse,
    normalize_to_target,
    psnr,
    score_images,
    ssim,
    ssim_torch,
    summarize_scores,
)

SIZES = [150, 64, 75]
KINDS = ["random", "smooth", "ring"]


def _einstein_ring(n: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(x - rng.uniform(-2, 2), y - rng.uniform(-2, 2))
    ring = np.exp(-0.5 * ((r - n / 4) / (n / 30)) ** 2)
    return ring + 0.03 * rng.standard_normal((n, n))


def _pair(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.random((n, n)), rng.random((n, n))
    if kind == "smooth":
        a = gaussian_filter(rng.random((n, n)), 3)
        return a + 0.01 * rng.standard_normal((n, n)), a
    return _einstein_ring(n, rng), _einstein_ring(n, rng)


def _skimage(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_ssim_matches_skimage(kind, n):
    a, b = _pair(kind, n)
    ref = _skimage(a, b)
    assert abs(ssim(a, b) - ref) < 1e-6
    ta, tb = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    assert abs(ssim_torch(ta, tb).item() - ref) < 1e-6
    assert abs(ssim_torch(ta.float(), tb.float()).item() - ref) < 1e-4


def test_ssim_batched_per_image_and_differentiable():
    pairs = [_pair(k, 64, seed=i) for i, k in enumerate(KINDS)]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    ref = np.array([_skimage(x, y) for x, y in pairs])
    np.testing.assert_allclose(ssim(a, b), ref, atol=1e-6)
    ta = torch.from_numpy(a)[:, None].requires_grad_()
    values = ssim_torch(ta, torch.from_numpy(b)[:, None])
    assert values.shape == (3,)
    np.testing.assert_allclose(values.detach().numpy(), ref, atol=1e-6)
    values.sum().backward()
    assert torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0


def test_psnr_per_image_matches_hand_formula():
    rng = np.random.default_rng(3)
    t = rng.random((4, 20, 20))
    p = t + rng.normal(0, [[[0.01]], [[0.03]], [[0.1]], [[0.2]]], t.shape)
    hand = [10 * np.log10(1.0 / np.mean((p[i] - t[i]) ** 2)) for i in range(4)]
    np.testing.assert_allclose(psnr(p, t), hand, rtol=1e-12)
    np.testing.assert_allclose(psnr(p, t, data_range=2.0), np.array(hand) + 20 * np.log10(2))
    assert isinstance(psnr(p[0], t[0]), float)
    np.testing.assert_allclose(mse(p, t), [np.mean((p[i] - t[i]) ** 2) for i in range(4)])


def test_mean_of_psnr_is_not_psnr_of_mean_mse():
    # Two images with MSE 1e-2 and 1e-4: per-image PSNR 20 and 40 dB, mean 30 dB.
    # PSNR of the pooled MSE (5.05e-3) is 22.97 dB, dominated by the worst image.
    # The project reports the mean of per-image PSNR (the SR-literature convention,
    # and per-image values are what the bootstrap interval and paired tests need).
    t = np.zeros((2, 16, 16))
    p = np.stack([np.full((16, 16), 0.1), np.full((16, 16), 0.01)])
    per_image = psnr(p, t)
    np.testing.assert_allclose(per_image, [20.0, 40.0])
    pooled = 10 * np.log10(1.0 / mse(p, t).mean())
    assert per_image.mean() == pytest.approx(30.0)
    assert pooled == pytest.approx(22.967, abs=1e-3)


def test_identical_images_give_inf_psnr_capped_in_summary():
    t = np.random.default_rng(0).random((2, 32, 32))
    p = t.copy()
    p[1] += 0.01
    scores = score_images(p, t)
    assert np.isinf(scores["psnr"][0])
    summary = summarize_scores(scores, n_boot=100)
    expected = (PSNR_CAP_DB + scores["psnr"][1]) / 2
    assert summary["psnr"]["mean"] == pytest.approx(expected)
    assert summary["ssim"]["n"] == 2


def test_normalize_to_target_numpy_and_torch():
    t = np.array([[[2.0, 6.0], [4.0, 4.0]], [[5.0, 5.0], [5.0, 5.0]]])
    p = np.array([[[4.0, 4.0], [8.0, 0.0]], [[5.0, 6.0], [4.0, 5.0]]])
    pn, tn = normalize_to_target(p, t)
    np.testing.assert_allclose(tn[0], [[0, 1], [0.5, 0.5]])
    np.testing.assert_allclose(pn[0], [[0.5, 0.5], [1.5, -0.5]])  # not clipped
    np.testing.assert_allclose(tn[1], 0.0)  # constant target: scale 1
    np.testing.assert_allclose(pn[1], [[0, 1], [-1, 0]])
    pt, tt = normalize_to_target(torch.from_numpy(p)[:, None], torch.from_numpy(t)[:, None])
    np.testing.assert_allclose(pt[:, 0].numpy(), pn)
    np.testing.assert_allclose(tt[:, 0].numpy(), tn)
    p2, t2 = normalize_to_target(p[0], t[0])
    np.testing.assert_allclose(p2, pn[0])


def test_scores_are_affine_invariant():
    rng = np.random.default_rng(5)
    t = np.stack([_einstein_ring(48, rng) for _ in range(3)])
    p = gaussian_filter(t, (0, 1, 1))
    base = score_images(p, t)
    scaled = score_images(p * 37.5 - 4.0, t * 37.5 - 4.0)
    for name in ("mse", "psnr", "ssim"):
        np.testing.assert_allclose(scaled[name], base[name], rtol=1e-9)
    from_torch = score_images(torch.from_numpy(p)[:, None], torch.from_numpy(t)[:, None])
    np.testing.assert_allclose(from_torch["ssim"], base["ssim"])


def test_score_images_error_messages():
    t = np.zeros((3, 148, 148))
    with pytest.raises(LensrError, match=r"prediction has shape \(3,150,150\) but target has "):
        score_images(np.zeros((3, 150, 150)), t)
    p = np.zeros((5, 16, 16))
    p[4, :3, :4] = np.nan
    with pytest.raises(LensrError, match=r"^prediction contains 12 NaN pixels \(image 4\)$"):
        score_images(p, np.zeros((5, 16, 16)))
    t = np.zeros((5, 16, 16))
    t[1, 0, 0] = t[3, 0, 0] = np.inf
    with pytest.raises(LensrError, match=r"target contains 2 infinite pixels \(images 1, 3\)"):
        score_images(np.zeros((5, 16, 16)), t)
    with pytest.raises(LensrError, match="smaller than the 11x11 SSIM window"):
        score_images(np.zeros((2, 8, 8)), np.ones((2, 8, 8)))
