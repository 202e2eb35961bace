"""Example-level differential privacy: DP-SGD in a client's local training, with Opacus.

DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"): each step
draws a Poisson sample of the client's examples (each with probability ``q = B / n``,
the sampling the accountant's ``PoissonSampledDpEvent`` assumes), clips every
example's gradient to L2 norm ``max_grad_norm``, sums, adds ``N(0, (z C)^2)`` and
divides by the expected batch ``q n``.  Opacus computes the per-example gradients
(``GradSampleModule``) and does the clipping, noise and scaling (``DPOptimizer``, its
noise drawn from ``(seed, "dp", round, partition id)``).  LSTM and GRU layers become
Opacus's ``DPLSTM``/``DPGRU`` (``ModuleValidator.fix``), which keep ``nn.LSTM``'s
parameter names, so the weights go back into the client's model unchanged.

A round takes ``local_epochs * ceil(n / B)`` steps, as plain training does.  The
algorithm's gradient terms (a proximal pull, an offset: they do not read the data),
``client.max_grad_norm`` and weight decay are applied to the private gradient after the noise,
by the same code as plain training's (clients/training.py): post-processing, which costs no
privacy.  An algorithm's own objective (a loss that reads the data) is the loss whose
per-example gradients are clipped.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn

from clients.training import add_terms, cross_entropy
from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Objective, Term


def private_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with the same weights, in layers Opacus computes per-example gradients for."""
    with torch.random.fork_rng(devices=[]):  # DPLSTM draws initial weights it then overwrites
        fixed: nn.Module = ModuleValidator.fix(copy.deepcopy(model))
    return fixed


def train(
    model: nn.Module,
    data: Split,
    cfg: ClientConfig,
    max_grad_norm: float,
    noise_multiplier: float,
    sampling: torch.Generator,
    noise: torch.Generator,
    terms: Sequence[Term] = (),
    objective: Objective | None = None,
) -> float:
    """DP-SGD on ``data``; ``model`` gets the result.  Returns the mean loss of the non-empty steps."""
    private = private_copy(model)
    n = len(data)
    rate = min(1.0, cfg.batch_size / n)
    sampled, optimizer = make_private(
        private, cfg, max(1, round(rate * n)), max_grad_norm, noise_multiplier, noise
    )
    # By name, as the terms are (DPLSTM keeps nn.LSTM's parameter names, in its own order).
    named = {name: p for name, p in private.named_parameters() if p.requires_grad}
    params = list(named.values())
    loss_of = objective or cross_entropy
    sampled.train()
    losses = []
    for _ in range(cfg.local_steps(n)):
        optimizer.zero_grad(set_to_none=True)
        rows = torch.nonzero(torch.rand(n, generator=sampling) < rate).squeeze(1).to(data.x.device)
        if len(rows):
            x, y = data.batch(rows)
            loss, shown = loss_of(sampled, x, y)
            with warnings.catch_warnings():  # Opacus's hooks on a first layer whose input needs no grad
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            losses.append(shown.detach())
        else:  # an empty sample still takes a noisy step, as the accounting assumes
            no_examples(params)
        optimizer.pre_step()  # per-example clipping, noise, division by the expected batch
        _post_process(named, terms, cfg.max_grad_norm)
        optimizer.original_optimizer.step()
    state = private.state_dict()  # DPLSTM lists nn.LSTM's names beside its own: take the model's
    model.load_state_dict({k: state[k] for k in model.state_dict()})
    return float(torch.stack(losses).mean()) if losses else float("nan")


def make_private(
    module: nn.Module,
    cfg: ClientConfig,
    expected_batch: int,
    max_grad_norm: float,
    noise_multiplier: float,
    noise: torch.Generator,
) -> tuple[GradSampleModule, DPOptimizer]:
    """Opacus's per-example gradients around ``module``, and SGD as ``cfg`` says behind DP-SGD's step."""
    sampled = GradSampleModule(module)
    inner = torch.optim.SGD(
        sampled.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    optimizer = DPOptimizer(
        inner,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=expected_batch,
        generator=noise,
    )
    return sampled, optimizer


def no_examples(params: Sequence[nn.Parameter]) -> None:
    """Per-example gradients of an empty Poisson sample: the step is noise alone."""
    for p in params:
        setattr(p, "grad_sample", torch.zeros((0, *p.shape), device=p.device))  # noqa: B010


def _post_process(params: Mapping[str, nn.Parameter], terms: Sequence[Term], max_norm: float | None) -> None:
    """Data-independent steps on the private gradient: the algorithm's terms, then clipping."""
    add_terms(terms, params)
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
