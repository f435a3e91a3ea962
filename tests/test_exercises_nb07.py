"""Notebook 07's exercises beyond the generic checks of test_exercises.py: the reference solutions
agree with the package's model and estimator and with each other (the autoencoder's loss is minus
the beta = 0 objective at zero noise); 07.2's cases hold beta = 0, 0.5, 1 and 4; 07.4's fraction is
the signal's share of a sampled code's variance, exactly, and it is ~1 for a narrow unit and ~0 for
a switched-off one; wrong answers written the way a reader would write them (not the mistakes' own
functions) get the message meant for them, other correct ways pass, and hints leave the code to
the solution."""
import inspect

import numpy as np
import torch
import torch.nn.functional as F

from vae_utils.elbo import sgvb_b
from vae_utils.exercises import MISTAKE
from vae_utils.exercises import nb03, nb07
from vae_utils.models import VAEConfig, build

F64 = torch.float64


def _named(fb, name):
    return fb.status == MISTAKE and fb.mistake == name


def _model():
    return build(VAEConfig(x_dim=12, z_dim=3, hidden=(8,), activation="relu", init="default"), seed=1).double()


# -- 07.1 -------------------------------------------------------------------------------------

def test_autoencoder_loss_is_minus_the_package_models_log_likelihood_at_the_code():
    model = _model()
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(2), dtype=F64)
    with torch.no_grad():
        mu, _ = model.encode(x)
        mine = nb07.autoencoder_loss(x, mu, lambda z: model.decode(z).logits)
        assert torch.allclose(mine, -model.log_likelihood(x, mu), atol=1e-12)
    assert (mine > 0).all()  # grey levels: a Bernoulli loss is positive


def test_autoencoder_loss_is_minus_the_beta_0_objective_without_noise():
    for x, mu, decoder in nb07._ae_cases():
        logvar = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
        got = -nb07.beta_objective(x, mu, logvar, torch.zeros_like(mu), decoder, 0.0)
        assert torch.allclose(nb07.autoencoder_loss(x, mu, decoder), got, atol=1e-12)


def test_readers_wrong_autoencoder_losses_are_named():
    def clamped_bce(x, mu, decoder):          # F.binary_cross_entropy clamps its logs at -100
        return F.binary_cross_entropy(torch.sigmoid(decoder(mu)), x, reduction="none").sum(-1)

    def mse(x, mu, decoder):
        return F.mse_loss(torch.sigmoid(decoder(mu)), x, reduction="none").sum(-1)

    def per_pixel(x, mu, decoder):
        return F.binary_cross_entropy_with_logits(decoder(mu), x, reduction="none").mean(-1)

    def no_grad(x, mu, decoder):
        with torch.no_grad():
            return F.binary_cross_entropy_with_logits(decoder(mu), x, reduction="none").sum(-1)

    def log_likelihood(x, mu, decoder):
        return torch.distributions.Bernoulli(logits=decoder(mu), validate_args=False).log_prob(x).sum(-1)

    for answer, name in [(clamped_bce, "sigmoid then log"), (mse, "squared error"), (per_pixel, "mean over pixels"),
                         (no_grad, "gradients blocked"), (log_likelihood, "sign")]:
        assert _named(nb07.autoencoder.check(answer), name), (name, nb07.autoencoder.check(answer))


def test_the_saturation_probe_leaves_stable_answers_alone():
    assert nb07._ae_saturated_logits(nb07.autoencoder_loss) is None
    assert nb07._ae_saturated_logits(nb07._ae_sigmoid_then_log) == "sigmoid then log"


def test_other_stable_ways_of_writing_the_autoencoder_loss_pass():
    def with_bce(x, mu, decoder):
        return F.binary_cross_entropy_with_logits(decoder(mu), x, reduction="none").sum(-1)

    def with_logsigmoid(x, mu, decoder):
        a = decoder(mu)
        return -(x * F.logsigmoid(a) + (1 - x) * F.logsigmoid(-a)).sum(-1)

    def with_distributions(x, mu, decoder):
        return -torch.distributions.Bernoulli(logits=decoder(mu), validate_args=False).log_prob(x).sum(-1)

    for answer in (with_bce, with_logsigmoid, with_distributions):
        assert nb07.autoencoder.check(answer).passed, answer.__name__


# -- 07.2 -------------------------------------------------------------------------------------

def test_the_cases_hold_beta_0_half_1_and_4():
    assert sorted(case[-1] for case in nb07._beta_cases()) == [0.0, 0.5, 1.0, 4.0]


def test_beta_objective_is_the_package_estimator_b_with_kl_weight_beta():
    model = _model()
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(2), dtype=F64)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(4), dtype=F64)[0]
        for beta in (0.0, 0.5, 1.0, 4.0):
            mine = nb07.beta_objective(x, mu, logvar, eps, lambda z: model.decode(z).logits, beta)
            package = sgvb_b(model, x, 1, torch.Generator().manual_seed(4), kl_weight=beta)
            assert torch.allclose(mine, package, atol=1e-12), beta


def test_beta_1_is_notebook_03s_estimator_b_and_larger_beta_lowers_it():
    for x, mu, logvar, eps, decoder, _ in nb07._beta_cases():
        at = [nb07.beta_objective(x, mu, logvar, eps, decoder, beta) for beta in (0.0, 1.0, 4.0)]
        assert torch.allclose(at[1], nb03.estimator_b(x, mu, logvar, eps, decoder), atol=1e-12)
        assert (at[0] > at[1]).all() and (at[1] > at[2]).all()  # the KL is > 0 for these mu, logvar


def test_readers_wrong_beta_objectives_are_named():
    def rec(x, mu, logvar, eps, decoder):
        a = decoder(mu + (0.5 * logvar).exp() * eps)
        return -F.binary_cross_entropy_with_logits(a, x, reduction="none").sum(-1)

    def kl(mu, logvar):
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)

    def on_rec(x, mu, logvar, eps, decoder, beta):
        return beta * rec(x, mu, logvar, eps, decoder) - kl(mu, logvar)

    def as_loss(x, mu, logvar, eps, decoder, beta):
        return -rec(x, mu, logvar, eps, decoder) + beta * kl(mu, logvar)

    def divided(x, mu, logvar, eps, decoder, beta):
        return rec(x, mu, logvar, eps, decoder) - kl(mu, logvar) / beta

    def at_mu(x, mu, logvar, eps, decoder, beta):
        return rec(x, mu, logvar, torch.zeros_like(eps), decoder) - beta * kl(mu, logvar)

    for answer, name in [(on_rec, "beta on the reconstruction"), (as_loss, "loss, not objective"),
                         (divided, "beta divides the KL"), (at_mu, "deterministic z")]:
        assert _named(nb07.beta_vae.check(answer), name), (name, nb07.beta_vae.check(answer))


def test_readers_wrong_sample_and_kl_in_the_beta_objective_are_named():
    def sigma_squared(x, mu, logvar, eps, decoder, beta):
        z = mu + torch.exp(logvar) * eps
        rec = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(-1)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
        return rec - beta * kl

    def kl_without_half(x, mu, logvar, eps, decoder, beta):
        std = torch.exp(0.5 * logvar)
        p = torch.distributions.Bernoulli(logits=decoder(mu + std * eps), validate_args=False)
        kl = torch.sum(mu**2 + std**2 - 1 - logvar, dim=1)
        return p.log_prob(x).sum(dim=1) - beta * kl

    def kl_mean_over_units(x, mu, logvar, eps, decoder, beta):
        z = mu + eps * (logvar / 2).exp()
        rec = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(dim=1)
        kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
        return rec - beta * kl

    for answer, name in [(sigma_squared, "sigma as exp(logvar)"), (kl_without_half, "KL missing half"),
                         (kl_mean_over_units, "KL mean over latent units")]:
        fb = nb07.beta_vae.check(answer)
        assert _named(fb, name), (name, fb)
        assert "values differ" not in fb.message


def test_other_ways_of_writing_the_beta_objective_pass():
    def with_distributions(x, mu, logvar, eps, decoder, beta):
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        p = torch.distributions.Bernoulli(logits=decoder(mu + q.scale * eps), validate_args=False)
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
        return p.log_prob(x).sum(-1) - beta * kl

    def with_the_autoencoder_loss(x, mu, logvar, eps, decoder, beta):
        z = mu + torch.exp(0.5 * logvar) * eps
        return -nb07.autoencoder_loss(x, z, decoder) - beta * nb07._kl(mu, logvar)

    for answer in (with_distributions, with_the_autoencoder_loss):
        assert nb07.beta_vae.check(answer).passed, answer.__name__


# -- 07.3 -------------------------------------------------------------------------------------

def test_masking_zeroes_exactly_the_chosen_pixels_and_leaves_x_clean():
    for x, u, p in nb07._mask_cases():
        clean = x.clone()
        xt = nb07.masking_noise(x, u, p)
        assert torch.equal(x, clean)
        assert (xt[u < p] == 0).all() and torch.equal(xt[u >= p], x[u >= p])
        assert 0 < int((u < p).sum()) < u.numel()  # some pixels masked, some kept: the case can tell


def test_dropout_scaling_leaves_the_range_of_an_image():
    # the message's claim: dividing by 1 - p pushes grey levels above 1
    dropout = next(m for m in nb07.masking.mistakes if m.name == "dropout scaling")
    for x, u, p in nb07._mask_cases():
        assert nb07.masking_noise(x, u, p).max() <= 1
        assert dropout.answer(x, u, p).max() > 1


def test_readers_wrong_masks_are_named():
    def in_place(x, u, p):
        x *= (u >= p)
        return x

    def with_dropout(x, u, p):
        return F.dropout(x, p) * (1 - p)       # even with the scaling undone, the mask is dropout's own

    def keeps_p(x, u, p):
        return x * (u < p)

    def own_bernoulli(x, u, p):
        return x * torch.bernoulli(torch.full_like(x, 1 - p))

    for answer, name in [(in_place, "in place"), (with_dropout, "own noise"), (keeps_p, "mask inverted"),
                         (own_bernoulli, "own noise")]:
        assert _named(nb07.masking.check(answer), name), (name, nb07.masking.check(answer))


def test_other_ways_of_writing_masking_noise_pass():
    def times_mask(x, u, p):
        return x * (u >= p)

    def masked_fill(x, u, p):
        return x.masked_fill(u < p, 0.0)

    def clone_then_assign(x, u, p):
        xt = x.clone()
        xt[u < p] = 0
        return xt

    for answer in (times_mask, masked_fill, clone_then_assign):
        assert nb07.masking.check(answer).passed, answer.__name__


# -- 07.4 -------------------------------------------------------------------------------------

def test_signal_fraction_is_the_signals_share_of_a_sampled_codes_variance():
    # eps standardised per row (mean 0, variance 1 over its K draws): the law of total variance
    # then holds exactly for the sampled codes, Var(z_j) = Var_x(mu_j) + mean_x sigma_j^2
    for mu, logvar in nb07._signal_cases():
        eps = torch.randn(mu.shape[0], 50, mu.shape[1], generator=torch.Generator().manual_seed(1), dtype=F64)
        eps = (eps - eps.mean(1, keepdim=True)) / eps.std(1, unbiased=False, keepdim=True)
        z = mu[:, None] + (0.5 * logvar).exp()[:, None] * eps              # (B, K, J)
        var_z = z.reshape(-1, mu.shape[1]).var(0, unbiased=False)
        assert torch.allclose(nb07.signal_fraction(mu, logvar), mu.var(0, unbiased=False) / var_z, atol=1e-12)


def test_a_narrow_unit_is_signal_and_a_switched_off_unit_is_noise():
    g = torch.Generator().manual_seed(3)
    mu = torch.stack([torch.randn(500, generator=g, dtype=F64), torch.zeros(500, dtype=F64)], dim=1)
    logvar = torch.stack([torch.full((500,), -12.0, dtype=F64), torch.zeros(500, dtype=F64)], dim=1)
    frac = nb07.signal_fraction(mu, logvar)
    assert frac[0] > 0.9999 and frac[1] == 0                       # sigma^2 = e^-12 against Var(mu) ~ 1
    designed = nb07.signal_fraction(*nb07._signal_cases()[0])
    assert designed[0] > 0.99 and designed[1] == 0 and designed[2] == 0 and 0.05 < designed[3] < 0.95


def test_readers_wrong_fractions_are_named():
    def default_var(mu, logvar):
        v = mu.var(dim=0)
        return v / (v + logvar.exp().mean(dim=0))

    def with_std(mu, logvar):
        v = mu.var(0, unbiased=False)
        return v / (v + torch.exp(logvar / 2).mean(0))

    def last_dim(mu, logvar):                  # every earlier exercise reduced over dim -1
        v = torch.var(mu, dim=-1, correction=0)
        return v / (v + logvar.exp().mean(-1))

    for answer, name in [(default_var, "unbiased variance"), (with_std, "sigma for sigma^2"),
                         (last_dim, "over units")]:
        assert _named(nb07.signal.check(answer), name), (name, nb07.signal.check(answer))


def test_other_ways_of_writing_the_signal_fraction_pass():
    def with_correction(mu, logvar):
        v = torch.var(mu, dim=0, correction=0)
        return v / (v + logvar.exp().mean(0))

    def by_hand(mu, logvar):
        v = ((mu - mu.mean(0)) ** 2).mean(0)
        return 1 - logvar.exp().mean(0) / (v + logvar.exp().mean(0))

    def with_numpy(mu, logvar):
        v = np.var(mu.numpy(), axis=0)
        return v / (v + np.exp(logvar.numpy()).mean(axis=0))

    for answer in (with_correction, by_hand, with_numpy):
        assert nb07.signal.check(answer).passed, answer.__name__


# -- all --------------------------------------------------------------------------------------

def test_hints_leave_the_code_to_the_solution():
    for ex in (nb07.autoencoder, nb07.beta_vae, nb07.masking, nb07.signal):
        body = inspect.getsource(ex.reference).split('"""')[-1]
        for line in filter(None, (line.split("#")[0].strip() for line in body.splitlines())):
            assert line not in ex.hint_text, (ex.key, line)
