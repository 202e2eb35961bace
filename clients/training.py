"""Local training and evaluation: plain tensor slicing, no DataLoader, no per-sample work.

FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"):
with ``proximal_mu > 0`` the local objective gains ``mu/2 * ||w - w_global||^2``.
``max_grad_norm`` clips each step's gradient norm: recurrent models' gradients
can explode on long sequences (Pascanu et al. 2013, "On the difficulty of
training recurrent neural networks").
SCAFFOLD (Karimireddy et al. 2020) passes a ``correction`` ``c - c_i`` that every step
adds to the gradient, so the step is ``w -= lr * (g - c_i + c)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig


@torch.no_grad()
def add_proximal_gradient(params: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], mu: float) -> None:
    """Add the gradient of ``mu/2 * ||w - anchor||^2``, ``mu * (w - anchor)``, to every ``.grad``.

    In place rather than through autograd: the term is a sum of squares whose gradient is
    known, and differentiating it costs a graph node, a square and a backward pass per
    parameter each step (FedProx on Synthetic(1,1): 101.7 s with the autograd term against
    61.2 s without it over the same steps).  A parameter the batch left without a gradient
    gets the proximal one alone, as autograd would give it.
    """
    for p, a in zip(params, anchor, strict=True):
        if p.grad is None:
            p.grad = (p - a).mul_(mu)
        else:
            p.grad.add_(p - a, alpha=mu)


def train(
    model: nn.Module,
    data: Split,
    cfg: ClientConfig,
    proximal_mu: float,
    generator: torch.Generator,
    correction: Sequence[torch.Tensor] | None = None,
) -> float:
    """Run ``cfg.local_epochs`` of minibatch SGD; return the mean cross-entropy over steps.

    The proximal term is optimized but not included in the returned loss, so losses
    of FedAvg and FedProx runs compare directly.  ``correction`` holds one tensor per
    parameter, added to its gradient before every step.
    """
    params = list(model.parameters())
    momentum: list[torch.Tensor | None] = [None] * len(params)
    anchor = [p.detach().clone() for p in params] if proximal_mu > 0 else None
    model.train()
    total = torch.zeros((), device=data.x.device)  # summed on device: no sync per step
    steps = 0
    for _ in range(cfg.local_epochs):
        order = torch.randperm(len(data), generator=generator).to(data.x.device)
        for batch in order.split(cfg.batch_size):
            for param in params:
                param.grad = None
            x, y = data.batch(batch)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if anchor is not None:
                add_proximal_gradient(params, anchor, proximal_mu)
            if correction is not None:
                for param, offset in zip(params, correction, strict=True):
                    if param.grad is not None:  # None: unused by this batch, so SGD skips it
                        param.grad.add_(offset)
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            sgd_step(params, momentum, cfg)
            total += loss.detach()
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
