"""The closed-form linear-Gaussian model (pPCA) against torch.distributions and the paper's identities."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from vae_utils import elbo, importance
from vae_utils.linear_gaussian import (DTYPE, LinearGaussian, entropy, kl_gaussians, kl_to_prior,
                                      random_model, theta_gradients)


@pytest.fixture
def model():
    return random_model(x_dim=5, z_dim=3, s=0.7, seed=0)


@pytest.fixture
def data(model):
    x, _ = model.sample(8, generator=torch.Generator().manual_seed(1))
    return x


def random_q(batch, d, seed=2):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(batch, d, generator=g, dtype=DTYPE)
    logvar = torch.randn(batch, d, generator=g, dtype=DTYPE) - 1
    return mu, logvar


def test_log_marginal_matches_multivariate_normal(model, data):
    ref = MultivariateNormal(model.b, model.marginal_cov()).log_prob(data)
    torch.testing.assert_close(model.log_marginal(data), ref, rtol=0, atol=1e-10)


def test_posterior_is_bayes_rule(model, data):
    """log p(z|x) = log p(x|z) + log p(z) - log p(x) at any z."""
    m, S = model.posterior(data)
    z = torch.randn(4, *m.shape, generator=torch.Generator().manual_seed(3), dtype=DTYPE)
    bayes = model.log_likelihood(data, z) + model.log_prior(z) - model.log_marginal(data)
    torch.testing.assert_close(MultivariateNormal(m, S).log_prob(z), bayes, rtol=0, atol=1e-10)


def test_identity_log_p_equals_kl_plus_elbo(model, data):
    mu, logvar = random_q(len(data), model.z_dim)
    lhs = model.log_marginal(data)
    rhs = model.kl_to_posterior(data, mu, logvar) + model.elbo(data, mu, logvar)
    assert (lhs - rhs).abs().max() < 1e-10


def test_identity_with_full_covariance_q(model, data):
    g = torch.Generator().manual_seed(4)
    A = torch.randn(model.z_dim, model.z_dim, generator=g, dtype=DTYPE)
    cov = A @ A.T + 0.1 * torch.eye(model.z_dim, dtype=DTYPE)
    mu = torch.randn(len(data), model.z_dim, generator=g, dtype=DTYPE)
    rhs = model.kl_to_posterior(data, mu, cov=cov) + model.elbo(data, mu, cov=cov)
    assert (model.log_marginal(data) - rhs).abs().max() < 1e-10


def test_diagonal_q_gives_the_full_covariance_values(model, data):
    """A diagonal q is computed from its variances alone (Appendix B's sums); the same q as a
    full matrix goes through traces and log-determinants: the two code paths must agree."""
    mu, logvar = random_q(len(data), model.z_dim)
    cov = torch.diag_embed(logvar.exp())
    for name in ["expected_log_likelihood", "expected_log_joint", "elbo", "elbo_eq2", "kl_to_posterior"]:
        diag, full = getattr(model, name)(data, mu, logvar), getattr(model, name)(data, mu, cov=cov)
        assert diag.shape == full.shape == (len(data),), name
        torch.testing.assert_close(diag, full, rtol=0, atol=1e-12, msg=name)
    torch.testing.assert_close(kl_to_prior(mu, logvar), kl_to_prior(mu, cov=cov), rtol=0, atol=1e-12)
    torch.testing.assert_close(entropy(logvar), entropy(cov=cov), rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        model.elbo(data, mu)                          # neither logvar nor cov
    with pytest.raises(ValueError):
        model.elbo(data, mu, logvar, cov=cov)         # both


def test_eq2_and_eq3_agree(model, data):
    mu, logvar = random_q(len(data), model.z_dim)
    assert (model.elbo(data, mu, logvar) - model.elbo_eq2(data, mu, logvar)).abs().max() < 1e-10


def test_elbo_is_log_p_exactly_at_the_posterior_and_below_elsewhere(model, data):
    m, S = model.posterior(data)
    assert (model.elbo(data, m, cov=S) - model.log_marginal(data)).abs().max() < 1e-10
    assert model.kl_to_posterior(data, m, cov=S).abs().max() < 1e-10
    for seed in range(5):
        mu, logvar = random_q(len(data), model.z_dim, seed)
        assert (model.elbo(data, mu, logvar) < model.log_marginal(data)).all()


def test_kl_functions_match_torch_distributions(model):
    mu, logvar = random_q(6, model.z_dim)
    q = Normal(mu, (0.5 * logvar).exp())
    ref = torch.distributions.kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_prior(mu, logvar), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(elbo.kl_to_standard_normal(mu, logvar), ref, rtol=0, atol=1e-12)
    cov_q = torch.diag_embed(logvar.exp())
    cov_p = torch.tensor([[1.0, 0.3, 0.0], [0.3, 2.0, 0.1], [0.0, 0.1, 0.5]], dtype=DTYPE)
    mu_p = torch.tensor([0.1, -0.2, 0.3], dtype=DTYPE)
    ref = torch.distributions.kl_divergence(MultivariateNormal(mu, cov_q), MultivariateNormal(mu_p, cov_p))
    torch.testing.assert_close(kl_gaussians(mu, cov_q, mu_p, cov_p), ref, rtol=0, atol=1e-10)


def test_expected_log_likelihood_matches_monte_carlo(model, data):
    mu, logvar = random_q(len(data), model.z_dim)
    z = elbo.reparameterize(mu, logvar, 200_000, generator=torch.Generator().manual_seed(5))
    ll = model.log_likelihood(data, z)
    se = ll.std(0) / math.sqrt(len(z))
    assert ((ll.mean(0) - model.expected_log_likelihood(data, mu, logvar)).abs() < 4 * se).all()


@pytest.mark.parametrize("estimator", ["A", "B"])
def test_sgvb_estimators_are_unbiased_for_the_exact_elbo(model, data, estimator):
    mu, logvar = random_q(len(data), model.z_dim)
    n = 20_000  # n independent single-sample (L = 1) estimates per datapoint, in one batch
    m = model.with_q(mu.repeat(n, 1), logvar.repeat(n, 1))
    g = torch.Generator().manual_seed(6)
    draws = elbo.ESTIMATORS[estimator](m, data.repeat(n, 1), 1, g).view(n, len(data))
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - model.elbo(data, mu, logvar)).abs() < 4 * se).all()


def test_estimator_a_has_zero_variance_at_the_exact_posterior():
    model = random_model(x_dim=4, z_dim=1, s=0.5, seed=0)  # d = 1: the posterior is diagonal
    x, _ = model.sample(3, generator=torch.Generator().manual_seed(0))
    draws = elbo.sgvb_a(model, x, 1000, generator=torch.Generator().manual_seed(1))  # encode = posterior
    assert (draws - model.log_marginal(x)).abs().max() < 1e-10


def test_iwae_bound_approaches_log_p():
    model = random_model(x_dim=4, z_dim=2, s=0.5, seed=0)
    x, _ = model.sample(4, generator=torch.Generator().manual_seed(0))
    m = model.with_q(torch.zeros(2, dtype=DTYPE), torch.zeros(2, dtype=DTYPE))  # q = prior, a poor q
    g = torch.Generator().manual_seed(1)
    gap = lambda k: (model.log_marginal(x) - torch.stack([importance.iwae_bound(m, x, k, g) for _ in range(20)]).mean(0)).mean()
    assert gap(1) > gap(30) > gap(1000) > -0.05


def test_encode_gives_the_posteriors_diagonal_or_the_fixed_q(model, data):
    mu, logvar = model.encode(data)
    m, S = model.posterior(data)
    torch.testing.assert_close(mu, m)
    torch.testing.assert_close(logvar, S.diagonal().log().expand(len(data), -1))
    mu, logvar = model.with_q([0.0, 1.0, 2.0], [0.0, -1.0, 0.5]).encode(data)
    torch.testing.assert_close(mu, torch.tensor([[0.0, 1.0, 2.0]], dtype=DTYPE).expand(len(data), -1))
    torch.testing.assert_close(logvar, torch.tensor([[0.0, -1.0, 0.5]], dtype=DTYPE).expand(len(data), -1))


def test_float32_model_computes_in_float32_and_agrees_with_float64(model, data):
    """Every tensor a method creates has W's dtype: nothing is promoted to float64 behind the caller's back."""
    m32 = random_model(x_dim=5, z_dim=3, s=0.7, seed=0, dtype=torch.float32)
    x32 = data.float()
    q32 = m32.with_q([0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    out = {"marginal_cov": (m32.marginal_cov(), model.marginal_cov()),
           "log_marginal": (m32.log_marginal(x32), model.log_marginal(data)),
           "posterior cov": (m32.posterior(x32)[1], model.posterior(data)[1]),
           "q mean": (q32.encode(x32)[0], model.with_q([0.1, 0.2, 0.3], [0.0, 0.0, 0.0]).encode(data)[0]),
           "elbo": (m32.elbo(x32, *m32.encode(x32)), model.elbo(data, *model.encode(data)))}
    for name, (got, exact) in out.items():
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got.double(), exact, rtol=1e-4, atol=1e-4, msg=name)
    x, z = m32.sample(4, generator=torch.Generator().manual_seed(1))
    assert x.dtype == z.dtype == torch.float32
    x64, z64 = model.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.double(), z64, rtol=1e-6, atol=1e-6)  # same draws, converted


def test_tensors_are_created_on_the_models_device():
    """On the meta device (no data, shapes and devices only), which stands in for a GPU: a method
    that made a tensor on the CPU would fail to combine it with W."""
    m = random_model(x_dim=5, z_dim=3, s=0.7, seed=0, device="meta")
    x = torch.zeros(2, 5, device="meta", dtype=DTYPE)
    mu, logvar = m.encode(x)
    results = [m.marginal_cov(), m.log_marginal(x), *m.posterior(x), *m.sample(3),
               *m.with_q([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]).encode(x), m.elbo(x, mu, logvar),
               m.kl_to_posterior(x, mu, logvar), m.log_prior(mu)]
    assert all(t.device.type == "meta" for t in results)


def closed_form_grad_log_px(model, x):
    """grad over (W, b, log s) of sum_x log N(x; b, K), K = W W^T + s^2 I, by hand:
    with r = x - b and G = 1/2 sum_x (K^-1 r r^T K^-1 - K^-1) = d log p / dK,
    d/dW = 2 G W,  d/db = sum_x K^-1 r,  d/dlog s = tr(G dK/dlog s) = 2 s^2 tr G."""
    K_inv = torch.linalg.inv(model.marginal_cov())
    a = (x - model.b) @ K_inv  # rows K^-1 r (K is symmetric)
    G = 0.5 * (a.T @ a - len(x) * K_inv)
    return torch.cat([(2 * G @ model.W).reshape(-1), a.sum(0), (2 * model.s**2 * torch.trace(G)).reshape(1)])


def test_theta_gradient_of_log_px_matches_the_closed_form(model, data):
    m, S = model.posterior(data)
    grads = theta_gradients(model, data, m, cov=S)
    assert grads.log_px.shape == (model.x_dim * model.z_dim + model.x_dim + 1,)
    torch.testing.assert_close(grads.log_px, closed_form_grad_log_px(model, data), rtol=0, atol=1e-10)


def test_elbo_gradient_is_the_likelihood_gradient_at_the_exact_posterior(model, data):
    """q = p_theta(z|x) (full covariance): grad_theta L = grad_theta log p(x), grad_theta KL = 0."""
    m, S = model.posterior(data)
    grads = theta_gradients(model, data, m, cov=S)
    assert grads.log_px.norm() > 1  # not trivially zero
    assert (grads.elbo - grads.log_px).abs().max() < 1e-10
    assert grads.kl.abs().max() < 1e-10


@pytest.mark.parametrize("q", ["posterior marginals (mean-field)", "shifted mean", "random"])
def test_elbo_gradient_differs_by_the_kl_gradient_away_from_the_posterior(model, data, q):
    m, S = model.posterior(data)
    if q == "posterior marginals (mean-field)":  # the exact mean and variances, no correlations
        mu, logvar = m, S.diagonal().log().expand_as(m)
    elif q == "shifted mean":
        mu, logvar = m + 0.5, S.diagonal().log().expand_as(m)
    else:
        mu, logvar = random_q(len(data), model.z_dim)
    grads = theta_gradients(model, data, mu, logvar)
    assert (grads.log_px - grads.elbo - grads.kl).abs().max() < 1e-10  # eq. 1, differentiated
    assert (grads.elbo - grads.log_px).norm() > 0.1 * grads.log_px.norm()  # a real difference


def test_elbo_gradient_matches_finite_differences(model, data):
    """grad L with q fixed, against central differences in log s and in one entry of W and b."""
    mu, logvar = random_q(len(data), model.z_dim)
    grads = theta_gradients(model, data, mu, logvar)
    h = 1e-5
    D, J = model.W.shape

    def L(W=model.W, b=model.b, s=model.s):
        return LinearGaussian(W, b, s).elbo(data, mu, logvar).sum()

    dW = torch.zeros_like(model.W)
    dW[1, 2] = h
    db = torch.zeros_like(model.b)
    db[3] = h
    fd = {"W[1, 2]": (L(W=model.W + dW) - L(W=model.W - dW)) / (2 * h),
          "b[3]": (L(b=model.b + db) - L(b=model.b - db)) / (2 * h),
          "log s": (L(s=model.s * math.exp(h)) - L(s=model.s * math.exp(-h))) / (2 * h)}
    got = {"W[1, 2]": grads.elbo[1 * J + 2], "b[3]": grads.elbo[D * J + 3], "log s": grads.elbo[-1]}
    for name in fd:
        assert abs(fd[name] - got[name]) < 1e-6 * max(1.0, abs(fd[name])), name


def test_tensor_s_gives_the_float_s_values(model, data):
    m = LinearGaussian(model.W, model.b, torch.tensor(model.s, dtype=DTYPE))
    mu, logvar = random_q(len(data), model.z_dim)
    for name in ["log_marginal", "elbo", "elbo_eq2", "kl_to_posterior"]:
        args = (data,) if name == "log_marginal" else (data, mu, logvar)
        torch.testing.assert_close(getattr(m, name)(*args), getattr(model, name)(*args), rtol=0, atol=1e-12, msg=name)
    z = torch.randn(len(data), model.z_dim, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
    torch.testing.assert_close(m.log_likelihood(data, z), model.log_likelihood(data, z), rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_model_agrees_with_the_cpu_model(model, data):
    m = random_model(x_dim=5, z_dim=3, s=0.7, seed=0, device="cuda")
    torch.testing.assert_close(m.log_marginal(data.cuda()).cpu(), model.log_marginal(data))
    x, _ = m.sample(4, generator=torch.Generator().manual_seed(1))  # a CPU generator: the same draws
    torch.testing.assert_close(x.cpu(), model.sample(4, generator=torch.Generator().manual_seed(1))[0])
