"""Local training and evaluation: plain tensor slicing, no DataLoader, no per-sample work.

A step is: the loss on a minibatch (cross-entropy, or the algorithm's own objective), its
gradient, then the algorithm's gradient terms (strategies/algorithm.py: a proximal pull
``mu (w - w_global)``, an offset ``c - c_i``, ...), clipping, and SGD.  The cohort engine
(clients/cohort.py) and DP-SGD (clients/dpsgd.py) take the same steps with the same terms.
``max_grad_norm`` clips each step's gradient norm: recurrent models' gradients can explode on
long sequences (Pascanu et al. 2013, "On the difficulty of training recurrent neural networks").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Objective, Term


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The default objective: the batch's mean cross-entropy, differentiated and reported."""
    loss = F.cross_entropy(model(x), y)
    return loss, loss


@torch.no_grad()
def add_terms(terms: Sequence[Term], params: Mapping[str, nn.Parameter]) -> None:
    """Add the algorithm's gradient terms to every ``.grad``, in order.

    A parameter the batch left without a gradient gets the terms alone (as autograd would give
    a term that is part of the loss); without terms it keeps none, and SGD skips it.
    """
    if not terms:
        return
    grads = {}
    for name, p in params.items():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads[name] = p.grad
    for term in terms:
        term.add_to(grads, params)


def train(
    model: nn.Module,
    data: Split,
    cfg: ClientConfig,
    generator: torch.Generator,
    terms: Sequence[Term] = (),
    objective: Objective | None = None,
) -> float:
    """Run ``cfg.local_epochs`` of minibatch SGD; return the mean reported loss over steps.

    The terms are optimized but not in the reported loss, so losses of FedAvg and FedProx runs
    compare directly (an objective of its own says what it reports).
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    tensors = list(params.values())
    momentum: list[torch.Tensor | None] = [None] * len(tensors)
    loss_of = objective or cross_entropy
    model.train()
    total = torch.zeros((), device=data.x.device)  # summed on device: no sync per step
    steps = 0
    for _ in range(cfg.local_epochs):
        order = torch.randperm(len(data), generator=generator).to(data.x.device)
        for batch in order.split(cfg.batch_size):
            for param in tensors:
                param.grad = None
            x, y = data.batch(batch)
            loss, shown = loss_of(model, x, y)
            loss.backward()
            add_terms(terms, params)
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(tensors, cfg.max_grad_norm)
            sgd_step(tensors, momentum, cfg)
            total += shown.detach()
            steps += 1
    return float(total) / steps


@torch.no_grad()
def sgd_step(params: Sequence[torch.Tensor], momentum: list[torch.Tensor | None], cfg: ClientConfig) -> None:
    """``torch.optim.SGD``'s step (no dampening, no Nesterov), in place; ``momentum`` holds its buffers.

    The same arithmetic as the optimizer's single-tensor path, without the optimizer: its
    first use imports ``torch._dynamo`` (about 1 s of a fresh worker's first round, on the
    path to the first reply).  A parameter without a gradient is skipped, as SGD skips it.
    """
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            continue
        if cfg.weight_decay:
            g = g.add(p, alpha=cfg.weight_decay)
        if cfg.momentum:
            buf = momentum[i]
            if buf is None:  # SGD starts the buffer at the first gradient
                buf = momentum[i] = g.detach().clone()
            else:
                buf.mul_(cfg.momentum).add_(g)
            g = buf
        p.add_(g, alpha=-cfg.lr)


@torch.no_grad()
def evaluate(model: nn.Module, data: Split, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of ``model`` on ``data``."""
    model.eval()
    loss = torch.zeros((), device=data.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.x.device)
    for start in range(0, len(data), batch_size):
        x, y = data.batch(slice(start, start + batch_size))
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    n = max(len(data), 1)
    return float(loss) / n, int(correct) / n
