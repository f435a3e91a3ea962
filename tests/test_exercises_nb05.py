"""Notebook 05's exercises, beyond the generic tests of tests/test_exercises.py: the probes fire,
the reference solutions agree with vae_utils, and what the mistakes' messages claim is true."""
import math

import pytest
import torch

import vae_utils.exercises as E
from vae_utils import hmc, importance, linear_gaussian, marginal
from vae_utils.exercises import nb05

F64 = torch.float64


def test_naive_exp_then_log_is_named_by_the_probe_at_minus_1e4():
    def naive(log_w):
        return torch.log(torch.exp(log_w).mean(0))

    fb = nb05.log_mean_exp.check(naive)
    assert fb.status == E.MISTAKE and fb.mistake == "exp then log underflows" and "-inf" in fb.message
    assert not torch.isfinite(naive(torch.full((3, 2), -1e4, dtype=F64))).any()  # what the message says


def test_a_manual_max_shift_done_right_passes():
    def stable(log_w):
        m = log_w.max(0).values
        return m + torch.log(torch.exp(log_w - m).mean(0))

    assert nb05.log_mean_exp.check(stable).passed


def test_the_solutions_agree_with_vae_utils():
    g = torch.Generator().manual_seed(0)
    log_w = -140 + 3 * torch.randn(30, 5, generator=g, dtype=F64)
    assert torch.allclose(nb05.log_px_estimate(log_w), importance.log_mean_exp(log_w, 0))
    assert torch.allclose(nb05.effective_sample_size(log_w), importance.effective_sample_size(log_w))


def test_ess_is_k_for_equal_weights_1_for_one_dominant_weight_and_scale_free():
    assert torch.allclose(nb05.effective_sample_size(torch.full((7, 2), -3.0, dtype=F64)), torch.full((2,), 7.0, dtype=F64))
    one = torch.tensor([[0.0], [-1e3], [-1e3]], dtype=F64)
    assert torch.allclose(nb05.effective_sample_size(one), torch.ones(1, dtype=F64))
    log_w = torch.randn(9, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    ess = nb05.effective_sample_size(log_w)
    assert torch.allclose(nb05.effective_sample_size(log_w - 1e4), ess)  # a constant factor cancels
    sum_not_squared = next(m for m in nb05.effective_samples.mistakes if m.name == "sum not squared").answer
    assert not torch.allclose(sum_not_squared(log_w - 5), sum_not_squared(log_w))  # ... not in this mistake


def test_naive_ess_is_named_by_the_probe():
    fb = nb05.effective_samples.check(lambda log_w: log_w.exp().sum(0) ** 2 / log_w.exp().pow(2).sum(0))
    assert fb.mistake == "exp underflows"
    fb = nb05.effective_samples.check(lambda log_w: 1 / torch.softmax(log_w, 0).pow(2).sum(0))  # the other correct form
    assert fb.passed


def test_the_leapfrog_solution_is_hmc_leapfrog_with_one_step():
    model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
    x, _ = model.sample(6, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    z, r = torch.randn(6, 3, generator=g, dtype=F64), torch.randn(6, 3, generator=g, dtype=F64)
    z1, r1, _, _ = hmc.leapfrog(model, x, z, r, hmc.log_joint_and_grad(model, x, z)[1],
                                torch.full((6,), 0.1, dtype=F64), 1)
    z2, r2 = nb05.leapfrog_step(z, r, 0.1, lambda zz: hmc.log_joint_and_grad(model, x, zz)[1])
    assert torch.allclose(z1, z2) and torch.allclose(r1, r2)


MISTAKE = {m.name: m.answer for m in nb05.leapfrog.mistakes}


@pytest.mark.parametrize("name,reversible", [("full kicks at both ends", True), ("gradient sign", True),
                                             ("old gradient at the end", False), ("Euler step", False),
                                             ("not reversible", False)])
def test_what_the_leapfrog_messages_say_about_reversibility(name, reversible):
    z, r, grad = nb05._target(7, 4, 3)
    assert nb05.round_trip_error(nb05.leapfrog_step, z, r, 0.2, grad) < 1e-12
    assert (nb05.round_trip_error(MISTAKE[name], z, r, 0.2, grad) < 1e-9) == reversible


def test_an_unnamed_irreversible_step_gets_the_reversibility_message():
    def kick_then_drift(z, r, eps, grad_log_p):  # symplectic Euler: not symmetric, not reversible
        r = r + eps * grad_log_p(z)
        return z + eps * r, r

    fb = nb05.leapfrog.check(kick_then_drift)
    assert fb.status == E.MISTAKE and fb.mistake == "not reversible"


def test_full_kicks_do_not_conserve_h_as_eps_shrinks_but_leapfrog_does():
    """The message of "full kicks at both ends": H is not conserved even as eps -> 0."""
    b, d = 4, 3
    z0, r0, grad = nb05._target(8, b, d)
    g = torch.Generator().manual_seed(8)
    m = torch.randn(b, d, generator=g, dtype=F64)

    def energy_error(step, eps):  # a Gaussian target, H = |z - m|^2 / 2 + |r|^2 / 2, trajectory length 1
        z, r = z0, r0
        for _ in range(round(1 / eps)):
            z, r = step(z, r, eps, lambda zz: -(zz - m))
        h = lambda z, r: 0.5 * ((z - m) ** 2).sum(-1) + 0.5 * (r**2).sum(-1)
        return (h(z, r) - h(z0, r0)).abs().mean().item()

    assert energy_error(nb05.leapfrog_step, 0.01) < 1e-3
    assert energy_error(MISTAKE["full kicks at both ends"], 0.01) > 0.1


def test_the_appendix_d_solution_is_marginal_appendix_d_from_samples():
    model = linear_gaussian.random_model(x_dim=5, z_dim=3, s=0.7, seed=0)
    x, _ = model.sample(4, generator=torch.Generator().manual_seed(1))
    m, S = model.posterior(x)
    g = torch.Generator().manual_seed(3)
    chol = torch.linalg.cholesky(S)
    z = m + (chol @ torch.randn(30, 4, 3, 1, generator=g, dtype=F64)).squeeze(-1)  # exact posterior samples
    want = marginal.appendix_d_from_samples(model, x, m, chol, z)
    from vae_utils.elbo import log_joint
    got = nb05.appendix_d_estimate(marginal.log_gaussian(z, m, chol), log_joint(model, x, z))
    assert torch.allclose(got, want)
    assert torch.allclose(got, model.log_marginal(x))  # q_F = the exact posterior: every ratio is 1/p(x)


def test_naive_appendix_d_overflows_and_is_named():
    def naive(log_qf, log_pxz):
        return -torch.log(torch.exp(log_qf - log_pxz).mean(0))

    fb = nb05.appendix_d.check(naive)
    assert fb.mistake == "exp overflows"
    assert math.isinf(torch.exp(torch.tensor(89.0)).item())  # float32: past 88 nats, as the message says


def _jacobian_det(step, z, r, eps, grad):
    """det of d(z_new, r_new) / d(z, r) for one chain (z, r of shape (1, d))."""
    d = z.shape[-1]

    def f(v):
        z1, r1 = step(v[:d].reshape(1, d), v[d:].reshape(1, d), eps, grad)
        return torch.cat([z1.reshape(-1), r1.reshape(-1)])

    return torch.linalg.det(torch.autograd.functional.jacobian(f, torch.cat([z.reshape(-1), r.reshape(-1)]))).item()


def test_leapfrog_preserves_volume_and_the_euler_step_does_not():
    """The message of "Euler step": neither reversible nor volume-preserving."""
    z, r, grad = nb05._target(9, 1, 3)
    assert abs(_jacobian_det(nb05.leapfrog_step, z, r, 0.3, grad) - 1) < 1e-12
    assert abs(_jacobian_det(MISTAKE["Euler step"], z, r, 0.3, grad) - 1) > 1e-3
