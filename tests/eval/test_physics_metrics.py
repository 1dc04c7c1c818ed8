"""Physics metrics on hand-made images: a ring of known radius, flux scaled, subhalo discs."""

from __future__ import annotations

import numpy as np
import pytest

from lensr.eval.physics_metrics import arc_mask, image_metrics, ring_radius

N, PS = 151, 0.05
C = ((N - 1) / 2, (N - 1) / 2)


def _ring(radius_arcsec: float, width_px: float = 2.0, centre=C) -> np.ndarray:
    rows, cols = np.indices((N, N), dtype=float)
    r = np.hypot(rows - centre[0], cols - centre[1])
    return np.exp(-0.5 * ((r - radius_arcsec / PS) / width_px) ** 2)


@pytest.mark.parametrize("theta_e", [0.9, 1.2, 1.5])
def test_ring_radius_recovers_a_thin_ring(theta_e):
    img = _ring(theta_e)
    assert ring_radius(img, arc_mask(img), centre=C, pixel_scale=PS) == pytest.approx(
        theta_e, rel=0.02
    )


def test_off_centre_lens_uses_the_given_centre():
    centre = (70.0, 82.0)
    img = _ring(1.1, centre=centre)
    assert ring_radius(img, arc_mask(img), centre=centre, pixel_scale=PS) == pytest.approx(
        1.1, rel=0.02
    )


def test_perfect_scaled_and_shrunk_predictions():
    truth = _ring(1.2)
    same = image_metrics(truth, truth, centre=C, pixel_scale=PS)
    assert same["flux_error"] == 0 and same["radius_error"] == 0 and same["profile_error"] == 0
    brighter = image_metrics(1.1 * truth, truth, centre=C, pixel_scale=PS)
    assert brighter["flux_error"] == pytest.approx(0.10, abs=1e-9)
    assert brighter["profile_error"] == pytest.approx(0.10, abs=1e-9)
    smaller = image_metrics(_ring(1.1), truth, centre=C, pixel_scale=PS)
    assert -0.12 < smaller["radius_error"] < -0.05  # the ring shrank by 0.1"


def test_error_where_the_subhalo_is_shows_in_psnr_sub():
    truth = _ring(1.2)
    sub = (C[0], C[1] + 1.2 / PS)  # a subhalo on the ring, (row, col)
    pred = truth.copy()
    rows, cols = np.indices(truth.shape)
    near = np.hypot(rows - sub[0], cols - sub[1]) <= 2
    pred[near] += 0.2  # an invented clump at the subhalo
    pred += np.random.default_rng(0).normal(0, 1e-3, pred.shape)
    m = image_metrics(pred, truth, centre=C, pixel_scale=PS, subhalos=[sub])
    assert m["psnr_sub"] < m["psnr_rest"] - 10
    none = image_metrics(pred, truth, centre=C, pixel_scale=PS)
    assert np.isnan(none["psnr_sub"]) and np.isnan(none["psnr_rest"])


def test_recorder_tracks_the_simulators_theta_e_on_noise_free_images(sim):
    from lensr.data.store import open_dataset
    from lensr.eval.physics_metrics import PhysicsRecorder

    with open_dataset(sim) as ds:
        rec = PhysicsRecorder(ds)
        rec.chunk(0, ds.hr_clean[:])
        rec.add("truth", ds.hr_clean[:])
        summary = rec.summary({"n_boot": 200, "seed": 0})
    ratio = np.asarray(rec.truth_radius) / np.asarray(rec.theta_e)
    # flux-weighted: the brighter outer image pulls it a little above theta_E (~1.09 measured)
    assert np.all((ratio > 0.9) & (ratio < 1.3)), ratio
    assert summary["models"]["truth"]["radius_error"]["mean"] == 0
