"""Exercises that check themselves: the machinery every notebook's exercises share.

An exercise asks the reader to write one function. Its checker calls the reader's function on
fixed inputs and compares the outputs with a reference solution's:

    from vae_utils.exercises import nb01 as ex

    def kl_to_prior(mu, logvar):
        ...                        # the reader's code
    ex.kl_to_prior.check(kl_to_prior)     # prints what is right or wrong, never raises

The feedback names the mistake when it recognises one: each exercise carries the usual wrong
answers (`Mistake`: a name, the message for it and a function that makes exactly that
mistake), and an answer whose outputs match a mistake's gets that mistake's message. A
function that still raises NotImplementedError is "not attempted yet", and the message
points to `.hint()` and `.solution()`; the solution is shown folded, one click away.

Some properties are not outputs (does a gradient flow? is the result finite for extreme
inputs?): an exercise's `probes` test them, each a function that returns the name of a
mistake it found, or None. They run after the named mistakes' outputs are compared, so an
answer that is wrong in idea hears about the idea before it hears about numerics.

Every exercise is tested (tests/test_exercises.py): its solution passes, each named mistake's
function gets that mistake's message, and a stub is "not attempted".
"""
from __future__ import annotations

import html
import inspect
import textwrap
import traceback
from dataclasses import dataclass
from typing import Callable

import torch

CORRECT, MISTAKE, WRONG, ERROR, NOT_ATTEMPTED = "correct", "mistake", "wrong", "error", "not attempted"
_SYMBOL = {CORRECT: "✓", MISTAKE: "✗", WRONG: "✗", ERROR: "✗", NOT_ATTEMPTED: "…"}


@dataclass(frozen=True)
class Mistake:
    """A usual wrong answer: its name, what the reader is told, and a function that makes it."""

    name: str
    message: str
    answer: Callable


@dataclass(frozen=True)
class Feedback:
    """What a check found. status: correct, mistake (a named one), wrong, error or not attempted."""

    exercise: str
    status: str
    message: str
    mistake: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:
        return f"{_SYMBOL[self.status]} {self.exercise}: {self.message}"

    def __str__(self) -> str:
        return repr(self)


class _Folded:
    """Text shown folded in a notebook (an HTML <details>), plainly anywhere else."""

    def __init__(self, summary: str, body: str):
        self.summary, self.body = summary, body

    def __repr__(self) -> str:
        return f"{self.summary}\n\n{self.body}"

    def _repr_html_(self) -> str:
        return (f"<details><summary>{html.escape(self.summary)}</summary>"
                f"<pre>{html.escape(self.body)}</pre></details>")


def outputs_close(a, b, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """True if two outputs (tensors, numbers, or tuples/lists of them) agree in shape and value."""
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(outputs_close(x, y, rtol, atol) for x, y in zip(a, b)))
    try:
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def describe_difference(got, want) -> str:
    """One line on how an output differs from the expected one: its type, shape or values."""
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"expected {len(want)} results (a {type(want).__name__}), got {_kind(got)}"
        for k, (g, w) in enumerate(zip(got, want)):
            if not outputs_close(g, w):
                return f"result {k}: " + describe_difference(g, w)
        return "the results agree"
    if isinstance(got, (tuple, list)):
        return (f"expected one tensor, got a {type(got).__name__} of {len(got)} results: "
                "combine them into one tensor (e.g. `torch.stack`)")
    try:
        g = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a tensor, got {_kind(got)}"
    w = torch.as_tensor(want, dtype=torch.float64)
    if g.shape != w.shape:
        return f"expected shape {tuple(w.shape)}, got shape {tuple(g.shape)}"
    if w.dim() == 0:
        return f"expected {w.item():.6g}, got {g.item():.6g}"
    k = int((g - w).abs().nan_to_num(float("inf")).flatten().argmax()) if g.numel() else 0
    return (f"values differ: at entry {k} expected {w.flatten()[k].item():.6g}, "
            f"got {g.flatten()[k].item():.6g}")


def _kind(x) -> str:
    return f"a {type(x).__name__}" + (f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else "")


class Exercise:
    """One exercise: a reference solution, the inputs it is checked on, the named mistakes.

    title: what to write, in a few words. solution: the reference function (its source is
    what `.solution()` shows). cases: a function returning a list of argument tuples (fresh
    tensors each call, so an answer that changes its inputs in place cannot spoil the next
    check). mistakes: `Mistake`s, recognised when an answer's outputs match theirs on every
    case. probes: functions answer -> the name of a mistake found, or None, run after the
    named mistakes' outputs are compared and before an answer is called correct. hint: a nudge. rtol, atol: the tolerance of the comparison.
    """

    def __init__(self, key: str, title: str, solution: Callable, cases: Callable, mistakes=(),
                 probes=(), hint: str = "", rtol: float = 1e-5, atol: float = 1e-6):
        self.key, self.title, self.reference = key, title, solution
        self.cases, self.mistakes, self.probes = cases, tuple(mistakes), tuple(probes)
        self.hint_text, self.rtol, self.atol = hint, rtol, atol
        names = [m.name for m in self.mistakes]
        if len(set(names)) != len(names):
            raise ValueError(f"exercise {key}: two mistakes share a name in {names}")

    def __repr__(self) -> str:
        return f"Exercise {self.key}: {self.title}"

    def _feedback(self, status, message, mistake=None) -> Feedback:
        return Feedback(self.key, status, message, mistake)

    def _by_name(self, name) -> Mistake:
        return next(m for m in self.mistakes if m.name == name)

    def check(self, answer: Callable) -> Feedback:
        """Run `answer` on the exercise's inputs and say what is right or wrong. Never raises."""
        name = getattr(answer, "__name__", "your function")
        args = self.cases()
        try:
            got = [answer(*a) for a in args]
        except NotImplementedError as err:
            stub = traceback.extract_tb(err.__traceback__)[-1].name  # the function that raised it
            if stub in (name, "<lambda>"):
                return self._feedback(NOT_ATTEMPTED, f"not attempted yet: write the body of `{name}`, then "
                                      f"run this cell again. Stuck? `.hint()`, then `.solution()`.")
            return self._feedback(ERROR, f"`{name}` calls `{stub}`, which is still a stub (it raises "
                                  f"NotImplementedError): write `{stub}` first, or call the package's version.")
        except Exception as err:  # the reader's code failed: say where, do not raise
            return self._feedback(ERROR, f"`{name}` raised {type(err).__name__}: {err}")
        want = [self.reference(*a) for a in self.cases()]
        right = all(outputs_close(g, w, self.rtol, self.atol) for g, w in zip(got, want))
        if not right:  # a named mistake first: what the answer computes says most about the idea
            for m in self.mistakes:
                try:
                    wrong = [m.answer(*a) for a in self.cases()]
                except Exception:  # a mistake that cannot run on these inputs is told by its probe
                    continue
                if all(outputs_close(g, w, self.rtol, self.atol) for g, w in zip(got, wrong)):
                    return self._feedback(MISTAKE, m.message, m.name)
        for probe in self.probes:  # then the properties outputs cannot show: gradients, extreme inputs
            try:
                found = probe(answer)
            except Exception as err:
                if not right:  # a wrong answer the probe cannot even run on: say where it differs
                    break
                # right values, yet it fails the probe: e.g. autograd cannot differentiate in-place work
                return self._feedback(ERROR, f"`{name}` gives the right values but fails when its inputs "
                                      f"require gradients ({type(err).__name__}: {err}). Avoid in-place "
                                      "operations (`+=`, `.add_()`, `.mul_()`) on tensors autograd needs.")
            if found is not None:
                return self._feedback(MISTAKE, self._by_name(found).message, found)
        if right:
            return self._feedback(CORRECT, "correct.")
        k = next(i for i, (g, w) in enumerate(zip(got, want)) if not outputs_close(g, w, self.rtol, self.atol))
        return self._feedback(WRONG, f"not yet: on test input {k + 1} of {len(want)}, "
                              f"{describe_difference(got[k], want[k])}. Stuck? `.hint()`.")

    def hint(self) -> _Folded:
        """The hint, folded until clicked."""
        return _Folded(f"Hint for {self.key}: {self.title}", textwrap.dedent(self.hint_text).strip())

    def solution(self) -> _Folded:
        """The reference solution's source, folded until clicked."""
        return _Folded(f"A solution to {self.key}: {self.title}", inspect.getsource(self.reference))


def exercises_of(module) -> list[Exercise]:
    """Every Exercise defined in a module, in the order they were defined."""
    return [v for v in vars(module).values() if isinstance(v, Exercise)]
