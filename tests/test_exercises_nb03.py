"""Notebook 03's exercises beyond the generic checks of test_exercises.py: the probe of 03.1
fires on unstable and clamped answers only, other correct ways of writing each answer pass, and
the reference solutions agree with the package functions the notebook runs."""
import torch
import torch.nn.functional as F

import vae_utils.exercises as E
from vae_utils.elbo import sgvb_b
from vae_utils.evaluate import active_units, kl_per_dimension
from vae_utils.exercises import nb03
from vae_utils.models import VAEConfig, build


def _kl(mu, logvar):
    return -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)


def _z(mu, logvar, eps):
    return mu + (0.5 * logvar).exp() * eps


# -- 03.1 -------------------------------------------------------------------------------------

def test_the_saturation_probe_names_sigmoid_then_log_and_a_clamp():
    def clamped(x, mu, logvar, eps, decoder):
        y = torch.sigmoid(decoder(_z(mu, logvar, eps))).clamp(1e-6, 1 - 1e-6)
        return (x * y.log() + (1 - x) * (1 - y).log()).sum(-1) - _kl(mu, logvar)

    for answer in (nb03._sigmoid_then_log, clamped):
        assert nb03._saturated_logits(answer) == "sigmoid then log"
        fb = nb03.bound.check(answer)
        assert fb.status == E.MISTAKE and fb.mistake == "sigmoid then log", fb


def test_the_saturation_probe_passes_every_stable_answer_and_the_other_mistakes():
    for m in nb03.bound.mistakes:
        if m.name != "sigmoid then log":
            assert nb03._saturated_logits(m.answer) is None, m.name
    assert nb03._saturated_logits(nb03.estimator_b) is None
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    zeros = torch.zeros(1, 2, dtype=torch.float64)
    signs = torch.tensor([[1.0, -1.0, -1.0, 1.0]], dtype=torch.float64)
    value = nb03.estimator_b(x, zeros, zeros, zeros, lambda z: 100 * signs + 0 * z.sum(-1, keepdim=True))
    assert torch.allclose(value, torch.tensor([-200.0], dtype=torch.float64))  # two pixels, -100 nats each


def test_other_stable_ways_of_writing_estimator_b_pass():
    def with_bce(x, mu, logvar, eps, decoder):
        logits = decoder(_z(mu, logvar, eps))
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1) - _kl(mu, logvar)

    def with_logsigmoid(x, mu, logvar, eps, decoder):
        logits = decoder(_z(mu, logvar, eps))
        return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1) - _kl(mu, logvar)

    def with_distributions(x, mu, logvar, eps, decoder):
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        logits = decoder(mu + q.scale * eps)
        p = torch.distributions.Bernoulli(logits=logits, validate_args=False)
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
        return p.log_prob(x).sum(-1) - kl

    for answer in (with_bce, with_logsigmoid, with_distributions):
        assert nb03.bound.check(answer).passed, answer.__name__


def test_estimator_b_is_the_package_estimator_of_the_notebook():
    model = build(VAEConfig(x_dim=12, z_dim=3, hidden=(8,), activation="relu", init="default"), seed=1).double()
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(4), dtype=torch.float64)[0]
        mine = nb03.estimator_b(x, mu, logvar, eps, lambda z: model.decode(z).logits)
        package = sgvb_b(model, x, 1, torch.Generator().manual_seed(4))
    assert torch.allclose(mine, package)


# -- 03.2 -------------------------------------------------------------------------------------

def test_a_step_with_backward_or_an_optimizer_passes():
    def with_backward(params, x, eps, lr):
        mu, logvar, decoder = nb03.tiny_vae(params, x)
        nb03.estimator_b(x, mu, logvar, eps, decoder).mean().backward()
        with torch.no_grad():
            return tuple(p + lr * p.grad for p in params)

    def with_sgd(params, x, eps, lr):
        params = tuple(p.detach().clone().requires_grad_() for p in params)
        opt = torch.optim.SGD(params, lr=lr)
        mu, logvar, decoder = nb03.tiny_vae(params, x)
        loss = -nb03.estimator_b(x, mu, logvar, eps, decoder).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return params

    for answer in (with_backward, with_sgd):
        assert nb03.step.check(answer).passed, answer.__name__


def test_a_small_step_of_the_reference_raises_the_bound_and_the_minimising_one_lowers_it():
    def bound(params, x, eps):
        with torch.no_grad():
            mu, logvar, decoder = nb03.tiny_vae(params, x)
            return nb03.estimator_b(x, mu, logvar, eps, decoder).mean().item()

    params, x, eps, _ = nb03._step_cases()[0]
    before = bound(params, x, eps)
    up = bound(nb03.aevb_step(params, x, eps, 1e-3), x, eps)
    params, x, eps, _ = nb03._step_cases()[0]
    down = bound(nb03.step.mistakes[0].answer(params, x, eps, 1e-3), x, eps)
    assert down < before < up


# -- 03.3 -------------------------------------------------------------------------------------

def test_unit_counts_agree_with_the_package_functions_of_the_notebook():
    model = build(VAEConfig(x_dim=10, z_dim=6, hidden=(16,), activation="tanh", init="default"), seed=3).double()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(torch.linspace(0.2, 4.0, p.shape[0], dtype=torch.float64).view(-1, *[1] * (p.dim() - 1)))
    x = torch.rand(300, 10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        active, informative = nb03.unit_counts(*model.encode(x))
    assert active == active_units(model, x)
    assert informative == int((kl_per_dimension(model, x) > 0.1).sum())
    assert 0 < active < 6 and 0 < informative < 6  # neither count is all or nothing, so the test can tell


def test_the_designed_case_separates_the_two_counts():
    mu, logvar = nb03._units_cases()[0]
    assert nb03.unit_counts(mu, logvar) == (2, 3)  # units 0, 2 are active; 0, 4, 5 carry over 0.1 nats
