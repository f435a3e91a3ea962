"""vae_utils.probes: balanced labelled sets, one-scale rescaling, PCA, and the probes, each
against a closed form, numpy's SVD, a planted answer or a shuffled-label control."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from vae_utils import probes


@pytest.fixture(scope="module")
def planted():
    """20-D Gaussian features labelled by argmax(x W): a labelling a linear probe can learn."""
    g = np.random.default_rng(0)
    w = g.normal(size=(20, 10))
    x, x_test = g.normal(size=(20000, 20)), g.normal(size=(2000, 20))
    return x, np.argmax(x @ w, 1), x_test, np.argmax(x_test @ w, 1)


def unequal_labels(seed=0):
    """10 classes of 30 to 120 rows each, shuffled: a balanced draw must correct the imbalance."""
    g = np.random.default_rng(seed)
    return g.permutation(np.repeat(np.arange(10), g.integers(30, 121, size=10)))


def test_balanced_indices_draw_n_over_c_distinct_rows_of_each_class():
    y = unequal_labels()
    rows = probes.balanced_indices(y, 100, seed=0)
    assert len(np.unique(rows)) == 100  # distinct: drawn without replacement
    np.testing.assert_array_equal(np.bincount(y[rows], minlength=10), np.full(10, 10))
    np.testing.assert_array_equal(rows, probes.balanced_indices(torch.as_tensor(y), 100, seed=0))
    assert not np.array_equal(rows, probes.balanced_indices(y, 100, seed=1))
    # labelled_rows is balanced_indices seeded by (seed, size, draw): one set per (size, draw)
    np.testing.assert_array_equal(probes.labelled_rows(y, 100, 2, seed=5),
                                  probes.balanced_indices(y, 100, (5, 100, 2)))
    assert not np.array_equal(probes.labelled_rows(y, 100, 0), probes.labelled_rows(y, 100, 1))


def test_balanced_indices_refuse_what_cannot_be_balanced():
    y = unequal_labels()
    with pytest.raises(ValueError, match="not a multiple of the 10 classes.*choose n as a multiple of 10"):
        probes.balanced_indices(y, 105, seed=0)
    small = np.concatenate([np.repeat(np.arange(9), 50), np.full(5, 9)])  # class 9 has 5 rows
    with pytest.raises(ValueError, match="class 9 has 5 rows.*lower n to at most 50"):
        probes.balanced_indices(small, 100, seed=0)
    probes.balanced_indices(small, 50, seed=0)  # the fix it names works


def test_rescale_has_one_scale_from_the_training_features():
    g = np.random.default_rng(0)
    widths = np.array([1.0, 2.0, 0.5, 3.0, 0.01])  # the last dimension 100 x smaller than the first
    x = g.normal(size=(12001, 5)) * widths + 4.0    # 12,001 rows: uneven blocks in the sum
    other = g.normal(size=(300, 5)) * widths - 2.0
    tr, te = probes.rescale(torch.as_tensor(x, dtype=torch.float32), other)
    assert tr.dtype == te.dtype == np.float64
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(tr.var(0).mean(), 1, rtol=1e-9)
    # one scale: the ratio of widths survives (StandardScaler would make it 1)
    np.testing.assert_allclose(tr[:, 4].std() / tr[:, 0].std(), x[:, 4].std() / x[:, 0].std(), rtol=1e-5)
    assert tr[:, 4].std() / tr[:, 0].std() < 0.02
    # the others with the TRAINING mean and scale (their own mean, -2, is not removed)
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(te, (other - x32.mean(0)) / np.sqrt(x32.var(0).mean()), rtol=1e-12)
    assert te.mean() < -1
    with pytest.raises(ValueError, match="constant"):
        probes.rescale(np.ones((10, 3)))
    with pytest.raises(ValueError, match=r"pass an \(N, D\) array"):
        probes.rescale(np.arange(10.0))


def test_pca_finds_a_planted_plane_as_numpy_svd_does():
    g = np.random.default_rng(0)
    plane = np.linalg.qr(g.normal(size=(10, 2)))[0].T                   # (2, 10) orthonormal rows
    x = (g.normal(size=(500, 2)) * [3.0, 2.0]) @ plane + 0.01 * g.normal(size=(500, 10)) + 5.0
    p = probes.pca(torch.as_tensor(x), 2)
    xc = x - x.mean(0)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    proj = lambda v: v.T @ v                                            # projection on span(rows)
    np.testing.assert_allclose(proj(p.components_), proj(vt[:2]), atol=1e-10)
    np.testing.assert_allclose(p.explained_variance_, sv[:2] ** 2 / (len(x) - 1), rtol=1e-10)
    assert np.abs(proj(p.components_) - proj(plane)).max() < 0.01     # the planted plane
    # what 2 components leave is the noise: rms 0.01 in the 8 directions off the plane
    resid = x - p.inverse_transform(p.transform(x))
    np.testing.assert_allclose(np.sqrt((resid**2).mean()), 0.01 * np.sqrt(8 / 10), rtol=0.1)


def test_linear_probe_learns_a_planted_labelling_and_not_shuffled_labels(planted):
    x, y, x_test, y_test = planted
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # lbfgs must meet its tolerance
        accs = probes.probe_accuracies(x, y, x_test, y_test, sizes=(100, 3000), draws=2)
    assert list(accs) == [100, 3000] and all(a.shape == (2,) for a in accs.values())
    assert accs[3000].min() > 0.9 and accs[3000].mean() > accs[100].mean()
    control = probes.probe_accuracies(x, np.random.default_rng(1).permutation(y), x_test, y_test,
                                      sizes=(3000,), draws=2)
    assert abs(control[3000].mean() - 0.1) < 0.05  # chance: 10 classes
    torch_accs = probes.probe_accuracies(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(x_test),
                                         torch.as_tensor(y_test), sizes=(3000,), draws=2)
    np.testing.assert_array_equal(torch_accs[3000], accs[3000])


def test_knn_separates_clusters_a_linear_probe_cannot():
    """Class c lives in two clusters, at +m_c and -m_c: no linear score is high at both."""
    g = np.random.default_rng(0)
    centres = 10 * g.normal(size=(10, 5))

    def draw(n):
        c, side = g.integers(0, 10, n), g.choice([-1.0, 1.0], n)
        return side[:, None] * centres[c] + g.normal(size=(n, 5)), c

    (x, y), (x_test, y_test) = draw(5000), draw(2000)
    knn = probes.probe_accuracies(x, y, x_test, y_test, sizes=(600,), draws=2, classifier="knn")
    linear = probes.probe_accuracies(x, y, x_test, y_test, sizes=(600,), draws=2)
    assert knn[600].min() > 0.99
    assert linear[600].max() < 0.5
    with pytest.raises(ValueError, match="choose 'linear' or 'knn'"):
        probes.probe_accuracies(x, y, x_test, y_test, classifier="svm")
    with pytest.raises(ValueError, match="one label per row"):
        probes.probe_accuracies(x, y[:-1], x_test, y_test, sizes=(100,))


def test_representations_are_paired_on_the_same_labelled_rows(planted, monkeypatch):
    x, y, x_test, y_test = planted
    g = np.random.default_rng(2)
    noisy, noisy_test = (np.argmax(a @ g.normal(size=(20, 10)) + 1.5 * g.normal(size=(len(a), 10)), 1)
                         for a in (x, x_test))
    # A rotated, stretched and shifted copy of the same features: with one scale for every
    # dimension, both probes see the same geometry, so on the same rows they score the same
    q = np.linalg.qr(g.normal(size=(20, 20)))[0]
    rot, rot_test = 7 * x @ q + 3, 7 * x_test @ q + 3
    for kind, tol in (("knn", 0.0), ("linear", 1e-3)):
        a = probes.probe_accuracies(x, noisy, x_test, noisy_test, (100, 600), draws=4, classifier=kind)
        b = probes.probe_accuracies(rot, noisy, rot_test, noisy_test, (100, 600), draws=4, classifier=kind)
        other = probes.probe_accuracies(x, noisy, x_test, noisy_test, (100, 600), draws=4, seed=1,
                                        classifier=kind)
        for size in (100, 600):
            np.testing.assert_allclose(b[size], a[size], rtol=0, atol=tol)
            assert np.abs(other[size] - a[size]).max() > 0.005  # other rows: other accuracies
    # and directly: each (size, draw) trains on labelled_rows(labels, size, draw, seed)
    seen = []
    real = probes.labelled_rows
    monkeypatch.setattr(probes, "labelled_rows", lambda *a: seen.append(real(*a)) or seen[-1])
    probes.probe_accuracies(x, y, x_test, y_test, (100, 600), draws=2, seed=3)
    probes.probe_accuracies(x[:, :3] ** 2, y, x_test[:, :3] ** 2, y_test, (100, 600), draws=2, seed=3)
    expected = [real(y, s, d, 3) for s in (100, 600) for d in range(2)]
    assert len(seen) == 8
    for got, want in zip(seen, expected * 2):
        np.testing.assert_array_equal(got, want)


def test_paired_margin_is_the_mean_and_sd_of_the_differences():
    mean, sd = probes.paired_margin([0.9, 0.8, 0.7], torch.tensor([0.8, 0.8, 0.5]))  # a - b = .1, 0, .2
    assert mean == pytest.approx(0.1) and sd == pytest.approx(0.1)
    # paired: a swing between draws that both share cancels (a and b each have sd 0.1)
    mean, sd = probes.paired_margin([0.9, 0.8, 0.7], [0.85, 0.75, 0.65])
    assert mean == pytest.approx(0.05) and sd == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="same draws"):
        probes.paired_margin([0.9, 0.8], [0.9, 0.8, 0.7])
