"""vae_utils.latent: where a trained encoder puts the data, each quantity against a closed
form, scipy, or a computation by hand."""
import numpy as np
import pytest
import torch

from vae_utils import latent
from vae_utils.models import VAE, VAEConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VAE(VAEConfig(z_dim=2, hidden=(16,), init="default")).eval()


def test_encode_means_equal_the_encoder_in_batches(model):
    x = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    mu, std = latent.encode_means(model, x, batch_size=16)  # 16 + 16 + 16 + 2 rows
    with torch.no_grad():
        mu_ref, logvar_ref = model.encode(x)
    np.testing.assert_allclose(mu, mu_ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, torch.exp(0.5 * logvar_ref).numpy(), rtol=1e-6)


def test_prior_and_aggregate_log_density_against_scipy():
    from scipy.stats import multivariate_normal

    g = np.random.default_rng(1)
    z = g.normal(size=(7, 2))
    np.testing.assert_allclose(latent.prior_log_density(z), multivariate_normal(np.zeros(2)).logpdf(z), rtol=1e-12)
    mu, std = g.normal(size=(3, 2)), g.uniform(0.2, 1.5, size=(3, 2))
    expected = np.log(np.mean([multivariate_normal(m, np.diag(s**2)).pdf(z) for m, s in zip(mu, std)], axis=0))
    np.testing.assert_allclose(latent.aggregate_log_density(z, mu, std), expected, rtol=1e-10)
    np.testing.assert_allclose(latent.aggregate_log_density(z, mu, std, chunk=2), expected, rtol=1e-10)  # chunks
    # one code at the prior: q(z) = p(z), the log ratio is 0 everywhere
    np.testing.assert_allclose(latent.log_density_ratio(z, np.zeros((1, 2)), np.ones((1, 2))), 0, atol=1e-12)


def test_gaussian_kl_per_code_is_appendix_b():
    from vae_utils.elbo import kl_to_standard_normal

    g = np.random.default_rng(2)
    mu, std = g.normal(size=(5, 2)), g.uniform(0.05, 2, size=(5, 2))
    expected = kl_to_standard_normal(torch.tensor(mu), torch.tensor(2 * np.log(std))).numpy()
    np.testing.assert_allclose(latent.gaussian_kl_per_code(mu, std), expected, rtol=1e-12)


def test_prior_matched_codes_have_the_prior_as_aggregate():
    g = np.random.default_rng(3)
    std = g.uniform(0.02, 0.5, size=(20_000, 2))
    mu0 = latent.prior_matched_codes(std, seed=0)
    z = mu0 + std * g.standard_normal(std.shape)
    se = np.sqrt(2 / len(z))  # sd of a mean of z^2 for z ~ N(0, 1)
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(len(z)))
    assert np.all(np.abs((z**2).mean(0) - 1) < 4 * se)
    with pytest.raises(ValueError):
        latent.prior_matched_codes(np.array([[0.5, 1.0]]))


def test_aggregate_kl_against_closed_forms():
    # one shared code N(m, s^2): q(z) is that Gaussian, KL(q || p) = 1/2 sum(m^2 + s^2 - 1 - log s^2)
    m, s = np.array([0.7, -0.4]), np.array([0.6, 1.3])
    mu, std = np.tile(m, (3000, 1)), np.tile(s, (3000, 1))
    kl, se = latent.aggregate_kl(mu, std, seed=0)
    exact = 0.5 * np.sum(m**2 + s**2 - 1 - np.log(s**2))
    assert abs(kl - exact) < 4 * se and se < 0.05
    # codes whose aggregate is N(shift, I): KL = |shift|^2 / 2, up to the small bias of scoring
    # each draw under its own component too
    std = np.full((4000, 2), 0.1)
    shift = np.array([1.0, 0.0])
    kl, se = latent.aggregate_kl(latent.prior_matched_codes(std, seed=1) + shift, std, seed=2)
    assert abs(kl - 0.5) < 4 * se + 0.05
    kl0, _ = latent.aggregate_kl(latent.prior_matched_codes(std, seed=1), std, seed=2)
    assert -0.05 < kl0 < 0.05
    # draws from a random subset of the codes: the same quantity, a larger standard error
    kl_sub, se_sub = latent.aggregate_kl(latent.prior_matched_codes(std, seed=1) + shift, std, seed=3, n_draws=1000)
    assert se_sub > se and abs(kl_sub - 0.5) < 4 * se_sub + 0.05


def test_class_medoids_are_real_codes_unlike_means():
    mu = np.array([[0, 0], [1, 0], [2, 0], [3, 0], [100, 0], [5, 5], [6, 5]], dtype=float)
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    medoids = latent.class_medoids(mu, labels)
    assert medoids[0] == 2  # (2, 0): summed distance 102; the mean (21.2, 0) is no code at all
    assert medoids[1] in (5, 6) and set(medoids) == {0, 1}


def test_pixel_entropy_closed_forms():
    imgs = np.stack([np.full((4, 4), 0.5), np.zeros((4, 4)), np.ones((4, 4)), np.full((4, 4), 0.1)])
    h = latent.pixel_entropy(imgs)
    np.testing.assert_allclose(h[:3], [np.log(2), 0, 0], atol=1e-9)
    np.testing.assert_allclose(h[3], -(0.1 * np.log(0.1) + 0.9 * np.log(0.9)), rtol=1e-9)


def test_nearest_labels_majority():
    mu = np.array([[0, 0], [0.1, 0], [0, 0.1], [5, 5], [5.1, 5]], dtype=float)
    labels = np.array([3, 3, 7, 1, 1])
    np.testing.assert_array_equal(latent.nearest_labels([[0, 0.05], [5, 5]], mu, labels, k=3), [3, 1])


def test_neighbour_fractions():
    g = np.random.default_rng(4)
    # two far-apart classes, and a third mixed evenly into the second
    mu = np.concatenate([g.normal(size=(60, 2)), g.normal(size=(60, 2)) + 50, g.normal(size=(60, 2)) + 50])
    labels = np.repeat([0, 1, 2], 60)
    f = latent.neighbour_fractions(mu, labels, k=5)
    np.testing.assert_allclose(f.sum(1), 1)
    assert f[0, 0] == 1 and f[1, 0] == 0 and f[2, 0] == 0
    assert 0.3 < f[1, 2] < 0.7 and 0.3 < f[2, 1] < 0.7  # 1 and 2 crowd each other
    # by hand for a tiny set: each point's single nearest other
    tiny = np.array([[0.0, 0], [1, 0], [3, 0]])
    np.testing.assert_allclose(latent.neighbour_fractions(tiny, np.array([0, 1, 1]), k=1), [[0, 1], [0.5, 0.5]])
    sub = latent.neighbour_fractions(mu, labels, k=5, n_queries=90, seed=1)
    np.testing.assert_allclose(sub.sum(1), 1)


def test_best_match_log_likelihood_by_hand():
    ref = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    y = np.array([[0.9, 0.2, 0.6], [0.1, 0.1, 0.9]])
    by_hand = np.array([[np.sum(x * np.log(yy) + (1 - x) * np.log(1 - yy)) for x in ref] for yy in y]).max(1)
    np.testing.assert_allclose(latent.best_match_log_likelihood(y, ref), by_hand, rtol=1e-12)
    np.testing.assert_allclose(latent.best_match_log_likelihood(y, torch.tensor(ref), chunk=1), by_hand, rtol=1e-12)
    scores, index = latent.best_match(y, ref)
    np.testing.assert_array_equal(index, [0, 1])  # y[0] is closest to ref[0], y[1] to ref[1]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)


def test_stratified_difference_by_hand_and_unmoved_by_the_mix():
    # stratum 0 scores 10 in both groups, stratum 1 scores 0 in both: no difference within a stratum
    group, g_strata = np.array([10.0, 10.0, 10.0, 0.0]), np.array([0, 0, 0, 1])      # 75% stratum 0
    ref, r_strata = np.array([10.0, 10.0, 0.0, 0.0, 0.0, 0.0]), np.array([0, 0, 1, 1, 1, 1])  # 33%
    assert group.mean() - ref.mean() > 4  # the raw difference credits the group with its mix
    d, _ = latent.stratified_difference(group, g_strata, ref, r_strata)
    assert d == 0.0
    # a shift of +1 in stratum 0 and -2 in stratum 1, weighted by the group's shares 3/4 and 1/4
    shifted = group + np.array([1.0, 1.0, 1.0, -2.0])
    d, _ = latent.stratified_difference(shifted, g_strata, ref, r_strata)
    assert d == pytest.approx(0.75 * 1 - 0.25 * 2)


def test_stratified_difference_standard_error_matches_its_spread():
    # many repetitions of a two-stratum experiment with known means: the mean of d is the true
    # difference, and the reported standard error is the spread of d
    g = np.random.default_rng(7)
    strata = np.repeat([0, 1, 2], [30, 12, 5])
    ref_strata = np.repeat([0, 1, 2], [20, 40, 8])
    mean, shift, sd = np.array([0.0, 5.0, -3.0]), np.array([1.0, -1.0, 2.0]), np.array([1.0, 3.0, 2.0])
    ds, ses = [], []
    for _ in range(3000):
        values = mean[strata] + shift[strata] + sd[strata] * g.standard_normal(len(strata))
        ref = mean[ref_strata] + sd[ref_strata] * g.standard_normal(len(ref_strata))
        d, se = latent.stratified_difference(values, strata, ref, ref_strata)
        ds.append(d)
        ses.append(se)
    w = np.array([30, 12, 5]) / 47
    truth_se = np.sqrt((w**2 * (sd**2 / [30, 12, 5] + sd**2 / [20, 40, 8])).sum())
    assert np.mean(ds) == pytest.approx((w * shift).sum(), abs=4 * truth_se / np.sqrt(3000))
    assert np.std(ds) == pytest.approx(truth_se, rel=0.05)  # 3000 draws: the spread is known to ~1.3%
    assert np.mean(ses) == pytest.approx(truth_se, rel=0.05)


def test_stratified_difference_single_values_and_bad_strata():
    ref, r_strata = np.array([0.0, 2.0, 0.0, 4.0]), np.array([0, 0, 1, 1])
    # stratum 1 holds one value of the group: it borrows stratum 0's variance (2.0), not 0
    d, se = latent.stratified_difference(np.array([1.0, 3.0, 7.0]), np.array([0, 0, 1]), ref, r_strata)
    assert d == pytest.approx(2 / 3 * (2 - 1) + 1 / 3 * (7 - 2))
    by_hand = np.sqrt((2 / 3) ** 2 * (2.0 / 2 + 2.0 / 2) + (1 / 3) ** 2 * (2.0 / 1 + 8.0 / 2))
    assert se == pytest.approx(by_hand)
    with pytest.raises(ValueError, match=r"strata \[2\] hold fewer than 2 reference values"):
        latent.stratified_difference(np.array([1.0, 2.0]), np.array([2, 2]), ref, r_strata)


def test_hole_fraction_is_about_one_percent_for_points_drawn_like_the_codes_and_more_with_a_hole():
    from vae_utils.latent import hole_fraction

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((4000, 2))
    same = hole_fraction(rng.standard_normal((4000, 2)), codes)
    assert abs(same - 0.01) < 4 * np.sqrt(0.01 * 0.99 / 4000)  # binomial: 4 standard errors
    # two clusters at -3 and +3 along z1, points from the Gaussian fitted to them: the middle is a hole
    clusters = np.concatenate([rng.standard_normal((2000, 2)) * 0.3 + [-3, 0], rng.standard_normal((2000, 2)) * 0.3 + [3, 0]])
    fitted = rng.multivariate_normal(clusters.mean(0), np.cov(clusters.T), 4000)
    assert hole_fraction(fitted, clusters) > 0.3
    # scale-free: stretching codes and points alike changes nothing
    assert hole_fraction(10 * fitted, 10 * clusters) == hole_fraction(fitted, clusters)
