"""Notebook 03's exercises beyond the generic checks of test_exercises.py: the probes of 03.1
fire on unstable and clamped answers only (not on logits read as probabilities), on a cut
gradient and on noise drawn inside the answer; 03.3's cases tell the average KL from the KL of
the average q and from a majority vote; other correct ways of writing each answer pass, the
hints leave the code to the solution, and the reference solutions agree with the package
functions the notebook runs."""
import inspect

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


def test_logits_read_as_probabilities_are_named_for_that_not_for_sigmoid_then_log():
    def answer(x, mu, logvar, eps, decoder):                   # the decoder of 02.3 returned y; this one returns logits
        y = decoder(_z(mu, logvar, eps))
        return (x * torch.log(y) + (1 - x) * torch.log(1 - y)).sum(-1) - _kl(mu, logvar)
    assert nb03._saturated_logits(answer) is None
    fb = nb03.bound.check(answer)
    assert fb.mistake == "logits as probabilities" and "returns logits" in fb.message, fb


def test_log_sigmoid_of_both_signs_is_caught_in_float32():
    def answer(x, mu, logvar, eps, decoder):                   # exact, and finite in float64 up to |a| = 709
        a = decoder(_z(mu, logvar, eps))
        return (x * torch.log(torch.sigmoid(a)) + (1 - x) * torch.log(torch.sigmoid(-a))).sum(-1) - _kl(mu, logvar)
    a = torch.tensor([-200.0, 200.0], dtype=torch.float64)
    assert torch.isfinite(torch.log(torch.sigmoid(a))).all()  # float64 alone at +-200 would miss it
    fb = nb03.bound.check(answer)
    assert fb.mistake == "sigmoid then log", fb


def test_a_detached_z_or_kl_and_fresh_noise_are_named():
    def z_detached(x, mu, logvar, eps, decoder):               # the reviewer's answer: right values, no path through z
        logits = decoder((mu + torch.exp(0.5 * logvar) * eps).detach())
        return (x * logits - F.softplus(logits)).sum(-1) - _kl(mu, logvar)

    def kl_no_grad(x, mu, logvar, eps, decoder):
        logits = decoder(_z(mu, logvar, eps))
        with torch.no_grad():
            kl = _kl(mu, logvar)
        return (x * logits - F.softplus(logits)).sum(-1) - kl

    def own_noise(x, mu, logvar, eps, decoder):
        z = torch.distributions.Normal(mu, (0.5 * logvar).exp()).rsample()
        return (x * decoder(z) - F.softplus(decoder(z))).sum(-1) - _kl(mu, logvar)

    for answer, name in [(z_detached, "z detached"), (kl_no_grad, "KL detached"), (own_noise, "own noise")]:
        fb = nb03.bound.check(answer)
        assert fb.status == E.MISTAKE and fb.mistake == name, (name, fb)


def test_bce_with_logits_default_reduction_is_named():
    def answer(x, mu, logvar, eps, decoder):
        return -F.binary_cross_entropy_with_logits(decoder(_z(mu, logvar, eps)), x) - _kl(mu, logvar)
    assert nb03.bound.check(answer).mistake == "reduction mean"


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
    assert nb03.unit_counts(mu, logvar) == (4, 5)  # units 0, 2, 6, 7 are active; 0, 4, 5, 6, 7 carry over 0.1 nats
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).mean(0)
    assert torch.allclose(kl[4:], torch.tensor([0.5 * (3 + torch.e**-3), 0.5 * (5 + torch.e**-6), 0.125, 0.2],
                                               dtype=torch.float64))   # the comments' 1.52, 2.50, 0.125, 0.2


def test_wrong_averages_of_the_kl_are_named():
    def kl_of_average(mu, logvar):                             # the reviewer's: squared mean, not mean square
        kl = -0.5 * (1 + logvar.mean(0) - mu.mean(0) ** 2 - logvar.exp().mean(0))
        return int((mu.var(0) > 0.01).sum()), int((kl > 0.1).sum())

    def majority(mu, logvar):
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp())
        return int((mu.var(0) > 0.01).sum()), int(((kl > 0.1).double().mean(0) > 0.5).sum())
    assert nb03.units.check(kl_of_average).mistake == "KL of the averaged q"
    assert nb03.units.check(majority).mistake == "most datapoints over 0.1"


def test_hints_leave_the_code_to_the_solution():
    given_away = {nb03.step: ["tuple(", "lr * gp", "autograd.grad(that"], nb03.units: ["mu.var(0)", "int((", ".mean(0)"]}
    for ex, fragments in given_away.items():
        body = inspect.getsource(ex.reference).split('"""')[-1]
        for line in filter(None, (line.split("#")[0].strip() for line in body.splitlines())):
            assert line not in ex.hint_text, (ex.key, line)
        assert not [f for f in fragments if f in ex.hint_text], ex.key
