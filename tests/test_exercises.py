"""Every exercise's checker: it accepts the reference solution, gives each named mistake the
message meant for it, says "not attempted" to a stub, and reports an error without raising."""
import importlib
import inspect
import math
import pkgutil

import pytest
import torch

import vae_utils.exercises as E

MODULES = [importlib.import_module(f"vae_utils.exercises.{m.name}") for m in pkgutil.iter_modules(E.__path__)]
EXERCISES = [ex for module in MODULES for ex in E.exercises_of(module)]
MISTAKES = [(ex, m) for ex in EXERCISES for m in ex.mistakes]


def test_every_notebook_module_has_exercises():
    assert MODULES and all(E.exercises_of(m) for m in MODULES)
    keys = [ex.key for ex in EXERCISES]
    assert len(set(keys)) == len(keys), f"two exercises share a key: {sorted(keys)}"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.key)
def test_the_reference_solution_passes(ex):
    fb = ex.check(ex.reference)
    assert fb.passed, fb


@pytest.mark.parametrize("ex,mistake", MISTAKES, ids=lambda v: getattr(v, "key", getattr(v, "name", "")))
def test_each_named_mistake_gets_its_own_message(ex, mistake):
    fb = ex.check(mistake.answer)
    assert fb.status == E.MISTAKE and fb.mistake == mistake.name, fb
    assert mistake.message in repr(fb)


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.key)
def test_a_stub_is_not_attempted_and_an_error_does_not_raise(ex):
    def stub(*args):
        raise NotImplementedError
    fb = ex.check(stub)
    assert fb.status == E.NOT_ATTEMPTED and ".hint()" in fb.message and ".solution()" in fb.message

    def broken(*args):
        raise ValueError("shapes do not match")
    fb = ex.check(broken)
    assert fb.status == E.ERROR and "ValueError: shapes do not match" in fb.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.key)
def test_hint_and_solution_fold_their_text(ex):
    assert ex.hint_text.strip(), f"{ex.key} has no hint"
    assert "<details>" in ex.hint()._repr_html_()
    shown = ex.solution()
    assert f"def {ex.reference.__name__}(" in repr(shown) and "<details>" in shown._repr_html_()


def test_an_unnamed_wrong_answer_is_told_where_it_differs():
    from vae_utils.exercises import nb01
    fb = nb01.kl.check(lambda mu, logvar: nb01.kl_to_prior(mu, logvar) + 0.5)
    assert fb.status == E.WRONG and "test input 1 of 3" in fb.message and "expected" in fb.message
    fb = nb01.kl.check(lambda mu, logvar: nb01.kl_to_prior(mu, logvar)[:1])
    assert fb.status == E.WRONG and "expected shape (5,), got shape (1,)" in fb.message


def test_outputs_close_compares_shape_type_and_value():
    assert E.outputs_close(torch.ones(3), torch.ones(3).double()) and E.outputs_close(2.0, torch.tensor(2.0))
    assert not E.outputs_close(torch.ones(3), [1.0, 1.0, 1.0])  # a list is a sequence of results
    assert not E.outputs_close(torch.ones(3), torch.ones(3, 1))
    assert not E.outputs_close(torch.ones(2), (torch.ones(2),))
    assert E.outputs_close((torch.ones(2), 3.0), [torch.ones(2), 3.0 + 1e-9])
    assert not E.outputs_close("a string", torch.ones(1))


def test_a_stub_called_by_a_finished_answer_is_named():
    from vae_utils.exercises import nb01

    def log_normal(z, mu, logvar):
        raise NotImplementedError

    def elbo_estimate(model, x, mu, logvar, eps):  # finished, but calls the stub of exercise 01.2
        z = mu + torch.exp(0.5 * logvar) * eps
        return (model.log_likelihood(x, z) + model.log_prior(z) - log_normal(z, mu, logvar)).mean(0)

    fb = nb01.bound.check(elbo_estimate)
    assert fb.status == E.ERROR and "calls `log_normal`, which is still a stub" in fb.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.key)
def test_each_solution_runs_when_pasted_into_a_notebook(ex):
    # what .solution() shows must work in the notebook: torch, math, F and the exercise module
    # (imported as `ex`) are there, and so are the functions of the exercises before it
    module = next(m for m in MODULES if ex in E.exercises_of(m))
    earlier = E.exercises_of(module)[:E.exercises_of(module).index(ex)]
    namespace = {"torch": torch, "math": math, "F": torch.nn.functional, "ex": module,
                 **{e.reference.__name__: e.reference for e in earlier}}
    exec(inspect.getsource(ex.reference), namespace)
    fb = ex.check(namespace[ex.reference.__name__])
    assert fb.passed, f"{ex.key}'s solution, pasted alone: {fb}"


def test_a_probe_that_raises_is_reported_not_raised():
    def probe(answer):
        x = torch.ones(2, requires_grad=True)
        return torch.autograd.grad(answer(x).sum(), x) and None
    ex = E.Exercise("00.1", "doubling", lambda x: 2 * x, lambda: [(torch.ones(3),)], probes=[probe], hint="2 x")

    def in_place(x):
        return x.mul_(2)  # on a leaf that requires grad: autograd refuses
    fb = ex.check(in_place)
    assert fb.status == E.ERROR and "in-place" in fb.message and "RuntimeError" in fb.message


def test_a_scalar_result_is_described_without_entries():
    assert E.describe_difference(3, 2) == "expected 2, got 3"


def test_a_named_mistake_is_told_before_a_probe_and_a_list_is_told_to_stack():
    def probe(answer):  # fires on any answer that is not finite at a large input
        return None if torch.isfinite(answer(torch.tensor([800.0], dtype=torch.float64))).all() else "overflow"
    ex = E.Exercise("00.2", "log(1 + e^x)", lambda x: torch.nn.functional.softplus(x),
                    lambda: [(torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64),)],
                    mistakes=[E.Mistake("overflow", "exp overflows", lambda x: torch.log(1 + torch.exp(x))),
                              E.Mistake("no one", "log(e^x) is x: the 1 is missing", lambda x: torch.log(torch.exp(x)))],
                    probes=[probe], hint="softplus")
    assert ex.check(lambda x: torch.log(torch.exp(x))).mistake == "no one"  # overflows too, but the idea comes first
    assert ex.check(lambda x: torch.log1p(torch.exp(x))).mistake == "overflow"
    assert ex.check(lambda x: torch.logaddexp(torch.zeros_like(x), x)).passed
    fb = ex.check(lambda x: [torch.nn.functional.softplus(v) for v in x])
    assert fb.status == E.WRONG and "combine them into one tensor" in fb.message
