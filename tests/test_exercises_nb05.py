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
                                             ("drift with the old momentum", False), ("drift-kick-drift", True),
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
    assert math.isinf(torch.exp(torch.tensor(89.0)).item())  # float32: past 88.7 nats, as the message says
    assert math.isfinite(torch.exp(torch.tensor(709.7, dtype=F64)).item())  # float64: up to about e^709.8 ...
    assert math.isinf(torch.exp(torch.tensor(709.9, dtype=F64)).item())  # ... and no further
    assert torch.exp(torch.tensor(-1000.0, dtype=F64)).item() == 0.0  # e^-1000 rounds to 0


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


# -- after the fresh reader's review: the idea before numerics, float32, more named steps ------------

@pytest.mark.parametrize("ex,answer,name", [
    (nb05.log_mean_exp, lambda log_w: torch.log(torch.exp(log_w).sum(0)), "no -log K"),
    (nb05.log_mean_exp, lambda log_w: torch.log(torch.exp(log_w).mean(-1)), "over the datapoints"),
    (nb05.effective_samples, lambda log_w: (log_w.exp() ** 2).sum(0) / log_w.exp().sum(0) ** 2, "inverted"),
    (nb05.effective_samples, lambda log_w: log_w.exp().sum(0) ** 2 / (log_w.exp() ** 2).sum(0) / log_w.shape[0],
     "fraction of K"),
    (nb05.appendix_d, lambda log_qf, log_pxz: torch.log(torch.exp(log_pxz - log_qf).mean(0)),
     "importance-sampling form"),
    (nb05.appendix_d, lambda log_qf, log_pxz: torch.log(torch.exp(log_qf - log_pxz).mean(0)), "log 1/p(x)"),
    (nb05.appendix_d, lambda log_qf, log_pxz: -torch.log(torch.exp(log_qf - log_pxz).sum(0)), "sum, not mean"),
])
def test_a_naive_answer_with_a_wrong_idea_hears_about_the_idea(ex, answer, name):
    """exp without log space makes it non-finite on the extreme case, so its outputs match no mistake:
    the probe compares it on the moderate cases and names the idea, not the underflow."""
    fb = ex.check(answer)
    assert fb.status == E.MISTAKE and fb.mistake == name, fb


@pytest.mark.parametrize("ex,answer", [
    (nb05.log_mean_exp, lambda log_w: torch.log(torch.exp(log_w).mean(0)) + 1),
    (nb05.effective_samples, lambda log_w: log_w.exp().sum(0) ** 2 / (log_w.exp() ** 2).sum(0) + 1),
    (nb05.appendix_d, lambda log_qf, log_pxz: -torch.log(torch.exp(log_qf - log_pxz).mean(0)) + 1),
])
def test_a_naive_answer_wrong_in_an_unnamed_way_is_told_where_it_differs(ex, answer):
    fb = ex.check(answer)
    assert fb.status == E.WRONG and "test input 1 of" in fb.message and "values differ" in fb.message, fb


def test_correct_float32_answers_pass_05_2():
    def logs_f32(log_w):
        log_w = log_w.float()
        return torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))

    def softmax_f32(log_w):
        return 1 / torch.softmax(log_w.float(), 0).pow(2).sum(0)

    for answer in (logs_f32, softmax_f32):
        assert nb05.effective_samples.check(answer).passed
    # what the tolerance lets through: the float32 forms err by more than 1e-5, less than 2e-3
    errs = [((f(*a).double() - nb05.effective_sample_size(*a)) / nb05.effective_sample_size(*a)).abs().max().item()
            for f in (logs_f32, softmax_f32) for a in nb05._ess_cases()]
    assert 1e-5 < max(errs) < 2e-3


def test_a_correct_float32_leapfrog_step_passes_and_is_reversible_to_its_rounding():
    def leapfrog_f32(z, r, eps, grad_log_p):
        z, r = z.float(), r.float()
        r = r + 0.5 * eps * grad_log_p(z.double()).float()
        z = z + eps * r
        return z, r + 0.5 * eps * grad_log_p(z.double()).float()

    assert nb05.leapfrog.check(leapfrog_f32).passed
    z, r, grad = nb05._target(4, 5, 3)
    err = nb05.round_trip_error(leapfrog_f32, z, r, 0.2, grad)
    assert 1e-9 < err < nb05.round_trip_tolerance(leapfrog_f32(z, r, 0.2, grad), 2.0)  # the old 1e-9 failed it
    assert nb05.round_trip_tolerance((z, r)) < 1e-12 and nb05.round_trip_tolerance((z.float(),)) > 1e-4


def test_every_named_irreversible_step_is_far_beyond_the_float32_tolerance():
    z, r, grad = nb05._target(4, 5, 3)
    tol32 = nb05.round_trip_tolerance((z.float(),), 2.0)
    for name in ("old gradient at the end", "Euler step", "drift with the old momentum", "not reversible"):
        assert nb05.round_trip_error(MISTAKE[name], z, r, 0.2, grad) > 100 * tol32


def test_drift_kick_drift_is_volume_preserving_and_second_order_as_its_message_says():
    z, r, grad = nb05._target(9, 1, 3)
    assert abs(_jacobian_det(MISTAKE["drift-kick-drift"], z, r, 0.3, grad) - 1) < 1e-12
    b, d = 4, 3
    z0, r0, _ = nb05._target(8, b, d)
    m = torch.randn(b, d, generator=torch.Generator().manual_seed(8), dtype=F64)

    def energy_error(step, eps):  # Gaussian target, trajectory length eps * n = 1
        z, r = z0, r0
        for _ in range(round(1 / eps)):
            z, r = step(z, r, eps, lambda zz: -(zz - m))
        h = lambda z, r: 0.5 * ((z - m) ** 2).sum(-1) + 0.5 * (r**2).sum(-1)
        return (h(z, r) - h(z0, r0)).abs().mean().item()

    for step in (nb05.leapfrog_step, MISTAKE["drift-kick-drift"]):
        ratio = energy_error(step, 0.1) / energy_error(step, 0.05)
        assert 2 * math.sqrt(2) < ratio < 4 * math.sqrt(2)  # halving eps divides the error by ~4


def test_the_05_3_hint_s_self_test_runs_and_shows_a_round_trip():
    snippet = nb05.leapfrog.hint_text.split("Test reversibility yourself, on the checker's first input:")[1]
    code = "\n".join(line.strip().split("   #")[0] for line in snippet.strip().splitlines())
    namespace = {"ex": nb05, "leapfrog_step": nb05.leapfrog_step}
    exec(code.replace("print(", "result = ("), namespace)
    assert max(v.item() for v in namespace["result"]) < 1e-12
    namespace["leapfrog_step"] = MISTAKE["old gradient at the end"]  # the same test shows an irreversible step
    exec(code.replace("print(", "result = ("), namespace)
    assert max(v.item() for v in namespace["result"]) > 1e-3


def _code_lines(fn):
    """The statements of a function's body, without its docstring and comments, whitespace removed."""
    import ast
    import inspect
    import textwrap
    body = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0].body
    body = body[1:] if isinstance(body[0], ast.Expr) else body
    return ["".join(ast.unparse(node).split()) for node in body]


@pytest.mark.parametrize("ex", E.exercises_of(nb05), ids=lambda ex: ex.key)
def test_no_hint_or_message_gives_the_solution_s_code(ex):
    texts = [ex.hint_text] + [m.message for m in ex.mistakes]
    for line in _code_lines(ex.reference):
        is_assignment = line[:1].isalpha() and "=" in line and not line.startswith("return")
        expression = (line.split("=", 1)[1] if is_assignment else line).removeprefix("return")
        assert all(expression not in "".join(t.split()) for t in texts), (ex.key, expression)
    assert all("logsumexp(" not in t and "softmax(" not in t for t in texts)
