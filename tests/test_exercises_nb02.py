"""Notebook 02's exercises beyond the generic checks of test_exercises.py: the reference solutions
agree with the package and with torch.distributions, the probes fire on the answers they are
meant for (`.sample()`, numpy, fresh noise, a detached z or KL whose value is right, an in-place
operation) and name the parameter or the term whose gradient is cut, a right float32 answer
passes, the hints leave the code to the solution, and the baseline's measurement reports an
unbiased gradient and a large variance drop."""
import inspect
import math

import numpy as np
import torch
import torch.distributions as D
import torch.nn.functional as F

import vae_utils.exercises as E
from vae_utils import elbo
from vae_utils.exercises import nb02


def _named(fb, name):
    return fb.status == E.MISTAKE and fb.mistake == name


# -- 02.1 -------------------------------------------------------------------------------------

def test_reparameterize_matches_the_package_and_torch_rsample():
    mu, logvar, _ = nb02._reparam_cases()[0]
    want = elbo.reparameterize(mu, logvar, 1, torch.Generator().manual_seed(5))[0]
    eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(5), dtype=mu.dtype)[0]
    assert torch.allclose(nb02.reparameterize(mu, logvar, eps), want, atol=1e-12)
    mu_, lv_ = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = nb02.reparameterize(mu_, lv_, eps)
    g_mu, g_lv = torch.autograd.grad(z.sum(), (mu_, lv_))
    assert torch.allclose(g_mu, torch.ones_like(mu)) and torch.allclose(g_lv, 0.5 * (0.5 * logvar).exp() * eps)


def test_sample_instead_of_rsample_is_named_gradients_blocked():
    fb = nb02.reparam.check(lambda mu, logvar, eps: D.Normal(mu, (0.5 * logvar).exp()).sample())
    assert _named(fb, "gradients blocked") and ".sample()" in fb.message


def test_numpy_is_named_gradients_blocked_and_a_detached_sigma_names_log_sigma2():
    def via_numpy(mu, logvar, eps):
        return torch.from_numpy(mu.numpy() + np.exp(0.5 * logvar.numpy()) * eps.numpy())

    def sigma_detached(mu, logvar, eps):
        return mu + torch.exp(0.5 * logvar).detach() * eps
    assert _named(nb02.reparam.check(via_numpy), "gradients blocked")
    fb = nb02.reparam.check(sigma_detached)
    assert _named(fb, "no gradient to log sigma^2") and "mu gets its gradient" in fb.message


def test_an_in_place_answer_is_an_error_not_correct():
    def in_place(mu, logvar, eps):
        return mu.add_(torch.exp(0.5 * logvar) * eps)   # right values on plain tensors
    fb = nb02.reparam.check(in_place)
    assert fb.status == E.ERROR and "in-place" in fb.message

    def in_place_b(decoder, x, mu, logvar, eps):
        z = mu.add_(0) + torch.exp(0.5 * logvar) * eps
        return nb02.estimator_b(decoder, x, mu, logvar, eps) + 0 * z.sum()
    fb = nb02.sgvb_b.check(in_place_b)
    assert fb.status == E.ERROR and "in-place" in fb.message


def test_rsample_with_its_own_noise_is_named_own_noise():
    fb = nb02.reparam.check(lambda mu, logvar, eps: D.Normal(mu, (0.5 * logvar).exp()).rsample())
    assert _named(fb, "own noise")


# -- 02.2 -------------------------------------------------------------------------------------

def test_laplace_rsample_is_torch_icdf_and_has_the_laplace_moments():
    for loc, scale, u in nb02._laplace_cases():
        assert torch.allclose(nb02.laplace_rsample(loc, scale, u), D.Laplace(loc, scale).icdf(u), atol=1e-12)
    u = torch.rand(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = nb02.laplace_rsample(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64), u)
    n = len(z)
    assert abs(z.mean().item() - 0.3) < 4 * z.std().item() / math.sqrt(n)            # E[z] = loc
    se_var = math.sqrt(((z - z.mean()) ** 4).mean().item() - z.var().item() ** 2) / math.sqrt(n)
    assert abs(z.var().item() - 2 * 0.7**2) < 4 * se_var                              # Var[z] = 2 scale^2


def test_laplace_via_torch_icdf_passes_and_rsample_or_numpy_are_named():
    assert nb02.laplace.check(lambda loc, scale, u: D.Laplace(loc, scale).icdf(u)).passed
    fb = nb02.laplace.check(lambda loc, scale, u: D.Laplace(loc, scale).rsample(u.shape))
    assert _named(fb, "own noise")

    def via_numpy(loc, scale, u):
        t = u.numpy() - 0.5
        return torch.from_numpy(loc.numpy() - scale.numpy() * np.sign(t) * np.log1p(-2 * np.abs(t)))
    assert _named(nb02.laplace.check(via_numpy), "gradients blocked")


# -- 02.3 -------------------------------------------------------------------------------------

class _Model:
    """The decoder of a 02.3 case with a fixed q, in the interface of vae_utils.elbo's estimators."""

    def __init__(self, decoder, mu, logvar):
        self.decoder, self.mu, self.logvar = decoder, mu, logvar

    def encode(self, x):
        return self.mu, self.logvar

    def log_likelihood(self, x, z):
        y = self.decoder(z)
        return (x * y.log() + (1 - x) * (1 - y).log()).sum(-1)


def test_estimator_b_is_the_packages_sgvb_b_on_the_same_noise():
    for decoder, x, mu, logvar, eps in nb02._b_cases():
        L = eps.shape[0]
        want = elbo.sgvb_b(_Model(decoder, mu, logvar), x, L, torch.Generator().manual_seed(9))
        eps9 = torch.randn((L, *mu.shape), generator=torch.Generator().manual_seed(9), dtype=mu.dtype)
        assert torch.allclose(nb02.estimator_b(decoder, x, mu, logvar, eps9), want, atol=1e-12)


def test_binary_cross_entropy_answers():
    def bce(decoder, x, mu, logvar, eps, reduction):
        y = decoder(mu + (0.5 * logvar).exp() * eps)
        rec = -F.binary_cross_entropy(y, x.expand_as(y), reduction=reduction)
        rec = rec.sum(-1).mean(0) if reduction == "none" else rec
        return rec - elbo.kl_to_standard_normal(mu, logvar)
    assert nb02.sgvb_b.check(lambda *a: bce(*a, "none")).passed
    assert _named(nb02.sgvb_b.check(lambda *a: bce(*a, "mean")), "reduction mean")


def test_a_detached_z_is_only_caught_by_the_gradient():
    for args in nb02._b_cases():                      # the value is exactly right on every case ...
        assert torch.allclose(nb02._b_detached(*args), nb02.estimator_b(*args))
    assert _named(nb02.sgvb_b.check(nb02._b_detached), "z detached")    # ... the gradient is not


def _b_with(kl_under_no_grad=False, sigma_detached=False, dtype=torch.float64):
    def answer(decoder, x, mu, logvar, eps):
        mu_, logvar_, eps_, x_ = (t.to(dtype) for t in (mu, logvar, eps, x))
        sigma = torch.exp(0.5 * logvar_)
        z = mu_ + (sigma.detach() if sigma_detached else sigma) * eps_
        y = decoder(z.to(torch.float64)).to(dtype)
        rec = (x_ * torch.log(y) + (1 - x_) * torch.log(1 - y)).sum(-1).mean(0)
        with torch.set_grad_enabled(not kl_under_no_grad):
            kl = 0.5 * (mu_**2 + logvar_.exp() - 1 - logvar_).sum(-1)
        return rec - kl
    return answer


def test_each_cut_gradient_path_of_estimator_b_is_named_by_its_term():
    fb = nb02.sgvb_b.check(_b_with(kl_under_no_grad=True))
    assert _named(fb, "KL detached") and "the KL term's does not" in fb.message
    assert _named(nb02.sgvb_b.check(_b_with(sigma_detached=True)), "z detached")
    assert _named(nb02.sgvb_b.check(nb02.sgvb_b.mistakes[0].answer), "gradients blocked")


def test_a_right_float32_answer_passes_though_its_gradient_is_float32():
    answer = _b_with(dtype=torch.float32)
    decoder, x, mu, logvar, eps = nb02._b_grad_args()
    mu2, lv2 = mu.detach().clone().requires_grad_(True), logvar.detach().clone().requires_grad_(True)
    g32 = torch.autograd.grad(answer(decoder, x, mu, logvar, eps).sum(), mu)[0]
    g64 = torch.autograd.grad(nb02.estimator_b(decoder, x, mu2, lv2, eps).sum(), mu2)[0]
    assert not torch.allclose(g32.double(), g64, rtol=1e-6, atol=1e-9)   # the old probe's tolerance fails it ...
    assert nb02.sgvb_b.check(answer).passed                              # ... the check does not


def test_hints_leave_the_code_to_the_solution():
    given_away = {nb02.laplace: ["log1p", "torch.sign", "log(1 - 2|u - 1/2|)", "log(2u)", "log(2 - 2u)"],
                  nb02.sgvb_b: ["exp(logvar / 2)", "x * log y", "mu_j^2 + sigma_j^2 - 1", "kl_to_standard_normal"],
                  nb02.baseline: ["fz.sum()", "(fz - b)", "sigma^3", "(z - mu) / sigma^2", "[:, None]"]}
    for ex, fragments in given_away.items():
        body = inspect.getsource(ex.reference).split('"""')[-1]          # the solution's code, after its docstring
        for line in filter(None, (line.split("#")[0].strip() for line in body.splitlines())):
            assert line not in ex.hint_text, (ex.key, line)
        assert not [f for f in fragments if f in ex.hint_text], ex.key


def test_the_baseline_solution_names_the_paper_sections_right():
    shown = repr(nb02.baseline.solution())
    assert "a control variate" in shown and "(section 2.2)" not in shown


# -- 02.4 -------------------------------------------------------------------------------------

def test_the_baseline_estimate_is_unbiased_and_the_own_sample_one_is_shrunk():
    mu, sigma, n = 0.5, 1.0, 200_000
    z = mu + sigma * torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = nb02.score_grad_baseline(z**2 + 100, z, mu, sigma)
    exact = torch.tensor([2 * mu, 2 * sigma], dtype=torch.float64)    # d/d(mu, sigma) of mu^2 + sigma^2 + 100
    assert ((g.mean(0) - exact).abs() < 4 * g.std(0) / math.sqrt(n)).all()
    for fz, z, mu, sigma in nb02._baseline_cases():
        own = nb02.baseline.mistakes[1].answer(fz, z, mu, sigma)
        assert torch.allclose(own, (len(fz) - 1) / len(fz) * nb02.score_grad_baseline(fz, z, mu, sigma))


def test_variance_drop_waits_for_a_passing_answer_then_measures():
    def stub(*args):
        raise NotImplementedError
    assert "waits for 02.4" in repr(nb02.variance_drop(stub))
    assert "no baseline" in repr(nb02.variance_drop(nb02.baseline.mistakes[0].answer))
    report = repr(nb02.variance_drop(nb02.score_grad_baseline))
    drops = [float(s.replace(",", "")) for s in __import__("re").findall(r"([\d,]+)x lower", report)]
    assert len(drops) == 2 and min(drops) > 100, report


def test_an_unnamed_wrong_answer_gets_a_location_not_an_exception():
    fb = nb02.laplace.check(lambda loc, scale, u: nb02.laplace_rsample(loc, scale, u) + 0.1)
    assert fb.status == E.WRONG and "test input 1 of 2" in fb.message
    fb = nb02.sgvb_b.check(lambda decoder, x, mu, logvar, eps: mu.sum(-1))
    assert fb.status == E.WRONG
