"""Exercises of notebook 05 (estimating log p(x)): checkers and reference solutions."""
from __future__ import annotations

import math

import torch

from . import Exercise, Mistake, outputs_close

F64 = torch.float64


def _finite_at(answer, *args) -> bool | None:
    """True if answer(*args) is finite everywhere, False if not, None if it fails or is not a tensor."""
    try:
        out = answer(*args)
        return bool(torch.isfinite(torch.as_tensor(out, dtype=F64)).all())
    except Exception:  # the outputs' comparison reports a failing or odd answer better
        return None


def _out_of_log_space(exercise, answer, extreme_args, moderate_cases, numeric: str) -> str | None:
    """What an answer that is not finite at extreme log-values is told: the idea first.

    If it is finite there: None. If not, it left log space; on moderate inputs, where exp neither
    overflows nor underflows in float64, it may still match the solution (then it is told `numeric`,
    the mistake of leaving log space) or a conceptual mistake (then it is told that one first: its
    idea is wrong whatever the precision). Anything else: None, and the check says where it differs.
    """
    if _finite_at(answer, *extreme_args) is not False:
        return None
    try:
        got = [answer(*a) for a in moderate_cases()]
    except Exception:
        return None
    candidates = [(numeric, exercise.reference)] + [(m.name, m.answer) for m in exercise.mistakes if m.name != numeric]
    for name, fn in candidates:
        want = [fn(*a) for a in moderate_cases()]
        if all(outputs_close(g, w, exercise.rtol, exercise.atol) for g, w in zip(got, want)):
            return name
    return None


# -- 1. The importance-sampled estimate: a stable log-mean-exp --------------------------------

def log_px_estimate(log_w):
    """log 1/K sum_k w_k for each datapoint, from log-weights log_w (K, B): shape (B,).

    log p(x) ~= log 1/K sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x): the estimate whose
    expectation is the bound L_K. Stable: logsumexp subtracts the largest log-weight first.
    """
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def _lme_cases(extreme: bool = True):
    """Log-weights (K, B) as on MNIST (about -140), near -1e4 (only if `extreme`), and near -1."""
    g = torch.Generator().manual_seed(0)
    mnist_like = -140 + 10 * torch.randn(1, 4, generator=g, dtype=F64) + 3 * torch.randn(50, 4, generator=g, dtype=F64)
    tiny = -1e4 + 2 * torch.randn(20, 3, generator=g, dtype=F64)  # exp(-1e4) is 0 in float64
    small = torch.randn(7, 2, generator=g, dtype=F64) - 1
    return [(mnist_like,), (tiny,), (small,)] if extreme else [(mnist_like,), (small,)]


def _underflow_probe(answer):
    log_w = -1e4 + torch.arange(8, dtype=F64).reshape(4, 2)
    return _out_of_log_space(log_mean_exp, answer, (log_w,), lambda: _lme_cases(extreme=False),
                             "exp then log underflows")


def _max_not_added_back(log_w):
    m = log_w.max(dim=0).values
    return torch.log(torch.exp(log_w - m).mean(dim=0))


log_mean_exp = Exercise(
    "05.1", "the importance-sampled log p(x), a stable log-mean-exp", log_px_estimate, _lme_cases,
    mistakes=[
        Mistake("exp then log underflows",
                "exp then log underflows to -inf: exp(-1e4) is 0 in floating point, and MNIST's "
                "log-weights (about -140 nats) already underflow in float32. Stay in log space: "
                "subtract the largest log-weight before exp and add it back after the log.",
                lambda log_w: torch.log(torch.exp(log_w).mean(dim=0))),
        Mistake("no -log K", "log-sum-exp without the -log K: that is log sum_k w_k, K times too big "
                "inside the log. The estimate averages the K weights: dividing by K inside the log is "
                "subtracting log K outside it.",
                lambda log_w: torch.logsumexp(log_w, dim=0)),
        Mistake("mean of the log-weights",
                "that is the mean of the log-weights, 1/K sum_k log w_k: an estimate of the bound L "
                "(K = 1), not of L_K. Take the log of the mean of the weights, not the mean of their logs.",
                lambda log_w: log_w.mean(dim=0)),
        Mistake("max not added back", "you subtracted the largest log-weight m before exp but did not "
                "add it back: log 1/K sum_k exp(a_k) = m + log 1/K sum_k exp(a_k - m).",
                _max_not_added_back),
        Mistake("over the datapoints", "one value per sample: you averaged over the datapoints (the last "
                "dimension). The K weights of one datapoint are along dim 0: reduce over dim 0.",
                lambda log_w: torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])),
    ],
    probes=[_underflow_probe],
    hint="""
        The weights exp(log_w) are too small to compute, but a log-mean-exp needs only
        differences: for any m,  log 1/K sum_k exp(a_k) = m + log 1/K sum_k exp(a_k - m).
        With m the largest a_k, the largest term is exp(0) = 1 and nothing underflows
        (PyTorch has a function that does this shift for a log-sum-exp). A mean is a sum
        divided by K: in logs, what does dividing become? One value per datapoint: reduce
        over the K samples, which lie along the first dimension.
    """,
)


# -- 2. The effective sample size of importance weights ---------------------------------------

def effective_sample_size(log_w):
    """(sum_k w_k)^2 / sum_k w_k^2 for each datapoint, from log-weights log_w (K, B): shape (B,).

    In logs: 2 log sum_k w_k - log sum_k w_k^2, with log w_k^2 = 2 log w_k. K for equal
    weights, 1 when one weight carries everything; a constant factor in every w_k cancels.
    """
    return torch.exp(2 * torch.logsumexp(log_w, dim=0) - torch.logsumexp(2 * log_w, dim=0))


def _ess_cases(extreme: bool = True):
    """Log-weights (K, B) as on MNIST (about -140), near -1e4 (only if `extreme`), and near 0."""
    g = torch.Generator().manual_seed(1)
    mnist_like = -140 + 10 * torch.randn(1, 4, generator=g, dtype=F64) + 2 * torch.randn(50, 4, generator=g, dtype=F64)
    tiny = -1e4 + torch.randn(20, 3, generator=g, dtype=F64)
    small = 0.5 * torch.randn(10, 2, generator=g, dtype=F64) + 0.3
    return [(mnist_like,), (tiny,), (small,)] if extreme else [(mnist_like,), (small,)]


def _ess_underflow_probe(answer):
    """exp(log w) underflows to 0 for log w near -1e4, and the ratio becomes 0/0 = nan."""
    log_w = -1e4 + 0.5 * torch.arange(8, dtype=F64).reshape(4, 2)
    return _out_of_log_space(effective_samples, answer, (log_w,), lambda: _ess_cases(extreme=False),
                             "exp underflows")


effective_samples = Exercise(
    "05.2", "the effective sample size of importance weights", effective_sample_size, _ess_cases,
    mistakes=[
        Mistake("exp underflows",
                "exp underflows: at log-weights near -1e4 every exp(log w) is 0 and the ratio is 0/0. "
                "Stay in log space: find the log of each sum from the log-weights, and exponentiate "
                "only at the end, when the number is the ESS itself (between 1 and K).",
                lambda log_w: log_w.exp().sum(0) ** 2 / (log_w.exp() ** 2).sum(0)),
        Mistake("inverted", "upside down: sum_k w_k^2 / (sum_k w_k)^2 is 1/ESS. The effective sample size "
                "is (sum_k w_k)^2 / sum_k w_k^2: K for equal weights, 1 when one weight dominates.",
                lambda log_w: torch.exp(torch.logsumexp(2 * log_w, 0) - 2 * torch.logsumexp(log_w, 0))),
        Mistake("fraction of K", "that is the ESS divided by K, a fraction: return the number of samples "
                "itself, (sum_k w_k)^2 / sum_k w_k^2 (K for equal weights).",
                lambda log_w: effective_sample_size(log_w) / log_w.shape[0]),
        Mistake("squared the log-weights", "log(w_k^2) is 2 log w_k, not (log w_k)^2: the log-weights of "
                "the squared weights are twice the log-weights.",
                lambda log_w: torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(log_w**2, 0))),
        Mistake("sum not squared", "the numerator is (sum_k w_k)^2, squared, not sum_k w_k: as written, "
                "your value changes when every weight is multiplied by the same constant (such as p(x)); "
                "the ESS must not.",
                lambda log_w: torch.exp(torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))),
    ],
    probes=[_ess_underflow_probe],
    hint="""
        Take the log of the ratio: it is made of logs of sums of weights (mind the square on
        the numerator's sum), and the log of a sum is a log-sum-exp of log-values, as in 05.1.
        For the sum of squares: what is log(w_k^2) in terms of log w_k? Exponentiate once,
        at the end.
        Another route: normalised weights p_k = w_k / sum_j w_j (they can be computed from the
        log-weights without leaving log space) give ESS = 1 / sum_k p_k^2.
        Check: K equal log-weights give K.
    """,
    rtol=2e-3,  # a correct answer in float32 errs by up to ~1e-3 at log-weights near -1e4
)


# -- 3. One leapfrog step, exactly reversible ---------------------------------------------------

def leapfrog_step(z, r, eps, grad_log_p):
    """One leapfrog step for H(z, r) = -log p(x, z) + |r|^2 / 2: returns (z_new, r_new).

    z, r: (B, d); eps: the step size; grad_log_p(z): grad_z log p(x, z), shape (B, d).
        r <- r + eps/2 grad log p(x, z);  z <- z + eps r;  r <- r + eps/2 grad log p(x, z_new)
    """
    r = r + 0.5 * eps * grad_log_p(z)  # half step for the momentum
    z = z + eps * r  # full step for the position
    r = r + 0.5 * eps * grad_log_p(z)  # half step, with the gradient at the new position
    return z, r


def _target(seed, b, d):
    """grad_z log p(z) for log p(z) = -1/2 (z - m)^T P (z - m) - 1/4 sum_j z_j^4: not Gaussian."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(b, d, generator=g, dtype=F64)
    a = torch.randn(d, d, generator=g, dtype=F64)
    prec = a @ a.T / d + torch.eye(d, dtype=F64)

    def grad_log_p(z):
        return -(z - m) @ prec - z**3

    z = torch.randn(b, d, generator=g, dtype=F64)
    r = torch.randn(b, d, generator=g, dtype=F64)
    return z, r, grad_log_p


def _leapfrog_cases():
    (z1, r1, g1), (z2, r2, g2) = _target(2, 4, 3), _target(3, 2, 2)
    return [(z1, r1, 0.1, g1), (z2, r2, 0.3, g2)]


def _kick_full_both_ends(z, r, eps, grad_log_p):
    r = r + eps * grad_log_p(z)
    z = z + eps * r
    return z, r + eps * grad_log_p(z)


def _sign(z, r, eps, grad_log_p):
    r = r - 0.5 * eps * grad_log_p(z)
    z = z + eps * r
    return z, r - 0.5 * eps * grad_log_p(z)


def _old_gradient(z, r, eps, grad_log_p):
    g = grad_log_p(z)
    r = r + 0.5 * eps * g
    z = z + eps * r
    return z, r + 0.5 * eps * g


def _euler(z, r, eps, grad_log_p):
    return z + eps * r, r + eps * grad_log_p(z)


def _drift_with_old_momentum(z, r, eps, grad_log_p):
    r_half = r + 0.5 * eps * grad_log_p(z)
    z = z + eps * r  # the old r, not r_half
    return z, r_half + 0.5 * eps * grad_log_p(z)


def _drift_kick_drift(z, r, eps, grad_log_p):
    z = z + 0.5 * eps * r
    r = r + eps * grad_log_p(z)
    return z + 0.5 * eps * r, r


def _swapped(z, r, eps, grad_log_p):
    z_new, r_new = leapfrog_step(z, r, eps, grad_log_p)
    return r_new, z_new


def _momentum_flipped(z, r, eps, grad_log_p):
    z_new, r_new = leapfrog_step(z, r, eps, grad_log_p)
    return z_new, -r_new


def _half_then_full(z, r, eps, grad_log_p):
    r = r + 0.5 * eps * grad_log_p(z)
    z = z + eps * r
    return z, r + eps * grad_log_p(z)


def round_trip_error(answer, z, r, eps, grad_log_p) -> float:
    """Run a step forward, flip the momentum, run it again, flip again: the largest distance from (z, r)."""
    z1, r1 = answer(z.clone(), r.clone(), eps, grad_log_p)
    z2, r2 = answer(torch.as_tensor(z1).clone(), -torch.as_tensor(r1), eps, grad_log_p)
    return max((torch.as_tensor(z2) - z).abs().max().item(), (-torch.as_tensor(r2) - r).abs().max().item())


def round_trip_tolerance(outputs, scale: float = 1.0) -> float:
    """What rounding allows a round trip in the outputs' precision: 1000 times the coarsest
    dtype's machine epsilon, times the size of the values (float64: ~4e-13, float32: ~2e-4)."""
    dtypes = [torch.as_tensor(o).dtype for o in outputs]
    eps = max(torch.finfo(d).eps if d.is_floating_point else torch.finfo(F64).eps for d in dtypes)
    return 1e3 * eps * max(1.0, scale)


def _reversibility_probe(answer):
    z, r, grad_log_p = _target(4, 5, 3)
    eps = 0.2
    try:
        out = answer(z.clone(), r.clone(), eps, grad_log_p)
        tol = round_trip_tolerance(out, max(z.abs().max().item(), r.abs().max().item()))
        if round_trip_error(answer, z, r, eps, grad_log_p) < tol:
            return None
    except Exception:
        return None  # the outputs' comparison says what is wrong
    return "not reversible"


leapfrog = Exercise(
    "05.3", "one leapfrog step, exactly reversible", leapfrog_step, _leapfrog_cases,
    mistakes=[
        Mistake("full kicks at both ends",
                "full momentum steps (eps grad) at both ends instead of half steps: the step is still "
                "reversible, but between two drifts the momentum gets 2 eps grad, twice the force, so over "
                "a trajectory of fixed length (e.g. eps * n = 1) H is not conserved even as eps -> 0. "
                "Kick by eps/2 before and after the position step.", _kick_full_both_ends),
        Mistake("gradient sign", "the momentum moves against grad log p(x, z): the force is "
                "+grad log p(x, z) = -grad U, with U = -log p(x, z) the potential. Kick along grad_log_p.",
                _sign),
        Mistake("old gradient at the end",
                "the second half step reuses the gradient at the old z: use grad_log_p at the new "
                "position. With the old one the step is not reversible (run it forward, flip r, run "
                "it again: you do not come back).", _old_gradient),
        Mistake("Euler step", "that is an Euler step (z and r both moved from the old point): it is "
                "neither reversible nor volume-preserving. Leapfrog: half kick, full drift with the new r, "
                "half kick with the gradient at the new z.", _euler),
        Mistake("drift with the old momentum",
                "the position moved with the old momentum r: drift with the half-kicked momentum, "
                "r + eps/2 grad log p(x, z), the one after the first kick. As written the step is not "
                "reversible.", _drift_with_old_momentum),
        Mistake("drift-kick-drift",
                "that is the drift-kick-drift leapfrog (position Verlet): also reversible, volume-"
                "preserving and second order, a valid integrator. Here, as in section 4 and hmc.leapfrog, "
                "it is kick-drift-kick: eps/2 kick, eps drift, eps/2 kick at the new z.", _drift_kick_drift),
        Mistake("swapped outputs", "you returned (r_new, z_new): return (z_new, r_new), the position first.",
                _swapped),
        Mistake("momentum flipped",
                "you returned -r_new: the step itself does not flip the momentum. The flip belongs to the "
                "reversibility test (and to HMC's proposal, where it changes nothing since H is even in r). "
                "Return (z_new, r_new).", _momentum_flipped),
        Mistake("not reversible",
                "not reversible: run forward, flip the momentum, run again, and you do not land back "
                "at the start, so the Metropolis test would be wrong. Compare your step with the three "
                "updates of the statement: both kicks are eps/2, the drift uses the momentum after the "
                "first kick, the last kick the gradient at the new z.", _half_then_full),
    ],
    probes=[_reversibility_probe],
    hint="""
        Kick, drift, kick. The momentum moves twice, by half steps along the force
        grad log p(x, z); the position moves once, by a full step, with the momentum as it is
        after the first kick. The second kick needs the force at the new position: evaluate
        grad_log_p again there. Return the position first.
        Test reversibility yourself, on the checker's first input:
            z, r, eps, grad_log_p = ex.leapfrog.cases()[0]
            z1, r1 = leapfrog_step(z, r, eps, grad_log_p)
            z2, r2 = leapfrog_step(z1, -r1, eps, grad_log_p)
            print((z2 - z).abs().max(), (r2 + r).abs().max())   # both ~1e-16: back at (z, -r)
    """,
)


# -- 4. Appendix D, step 3: the estimate from new posterior samples ----------------------------

def appendix_d_estimate(log_qf, log_pxz):
    """Appendix D's log p(x) from L posterior samples z_l: log_qf = log q_F(z_l) and
    log_pxz = log p(x, z_l) = log p(z_l) + log p(x|z_l), both (L, B): shape (B,).

        1/p(x) ~= 1/L sum_l q_F(z_l) / (p(z_l) p(x|z_l)),  so  log p(x) ~= -log-mean-exp(log q_F - log p(x, z))
    """
    d = log_qf - log_pxz
    return -(torch.logsumexp(d, dim=0) - math.log(d.shape[0]))


def _appendix_d_cases(extreme: bool = True):
    """(log q_F, log p(x, z)), (L, B) each: log p(x, z) about -150 (MNIST), -1000 (only if `extreme`), -3."""
    g = torch.Generator().manual_seed(5)
    out = []
    for L, B, scale in ((50, 4, -150.0), (20, 3, -1000.0), (8, 2, -3.0)):
        log_pxz = scale + 5 * torch.randn(1, B, generator=g, dtype=F64) + 2 * torch.randn(L, B, generator=g, dtype=F64)
        log_qf = 1 + torch.randn(L, B, generator=g, dtype=F64)
        if extreme or scale != -1000.0:
            out.append((log_qf, log_pxz))
    return out


def _overflow_probe(answer):
    log_pxz = -1000 + torch.arange(8, dtype=F64).reshape(4, 2)
    log_qf = torch.zeros(4, 2, dtype=F64)
    return _out_of_log_space(appendix_d, answer, (log_qf, log_pxz), lambda: _appendix_d_cases(extreme=False),
                             "exp overflows")


appendix_d = Exercise(
    "05.4", "Appendix D's estimate of log p(x) from posterior samples", appendix_d_estimate, _appendix_d_cases,
    mistakes=[
        Mistake("exp overflows",
                "your estimate is not finite when log p(x, z) is about -1000: there a ratio of the densities, "
                "exponentiated, is e^1000 (beyond float64's largest number, about e^709.8) or e^-1000 (which "
                "rounds to 0). In float32 the limit is e^88.7, already passed on MNIST, where log p(x, z) is "
                "about -150. Stay in log space until the end: average the ratios with a log-mean-exp, as in 05.1.",
                lambda log_qf, log_pxz: -torch.log((log_qf - log_pxz).exp().mean(0))),
        Mistake("importance-sampling form",
                "that averages p(x, z) / q_F(z), the importance-sampling form, which needs samples from "
                "q_F. These samples come from the posterior: average q_F(z) / p(x, z), which estimates "
                "1/p(x), then take minus its log.",
                lambda log_qf, log_pxz: torch.logsumexp(log_pxz - log_qf, 0) - math.log(log_qf.shape[0])),
        Mistake("log 1/p(x)", "that is log of the average of q_F / p(x, z), an estimate of log 1/p(x) = "
                "-log p(x): put a minus sign in front.",
                lambda log_qf, log_pxz: torch.logsumexp(log_qf - log_pxz, 0) - math.log(log_qf.shape[0])),
        Mistake("mean of the log-ratios",
                "that is the mean of log p(x, z) - log q_F(z): Appendix D averages the ratios "
                "q_F / p(x, z) themselves, then takes the log (a log-mean-exp, not a mean of logs).",
                lambda log_qf, log_pxz: (log_pxz - log_qf).mean(0)),
        Mistake("sum, not mean", "you summed the L ratios instead of averaging them: your estimate is "
                "log L too low. Average them: in logs, subtract log L before the minus sign.",
                lambda log_qf, log_pxz: -torch.logsumexp(log_qf - log_pxz, 0)),
    ],
    probes=[_overflow_probe],
    hint="""
        Appendix D averages the ratios q_F(z_l) / p(x, z_l) over posterior samples z_l: that
        average estimates 1/p(x), not p(x). Each ratio is the exp of a difference of your two
        inputs, often too large to compute (e^150 on MNIST); the log of their average is a log-mean-exp, as in
        05.1 (your log_px_estimate can do it). From log(1/p(x)), log p(x) is one step away.
    """,
)
