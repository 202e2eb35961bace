"""Flower's server-side strategies as built-ins: plug-ins like a user's (fedsim/scenario/plugins.py),
one factory per name.  The algorithms with a client half of their own have a file each in this
package (strategies/fedavg.py, fedprox.py and the others the registry names).

Each factory declares (strategies/algorithm.py) whether central DP may wrap it: the ones whose
aggregate is a mean of the clients' models.  Each takes its own parameters as keywords, checked
against its signature when the scenario is set up (types, and bounds from ``Bounds``), so
``[strategy.params]`` of a built-in and of a user's strategy meet the same checks.  ``**flower`` is Flower's
sampling settings: fedsim samples, and the strategy uses every node it is shown
(strategies/sampling.py).  ``context`` gives the scenario and the population.
Defaults are Flower 1.42's unless a comment says otherwise.  Client-side learning rates
are not parameters here: FedOpt's ``eta_l`` and QFedAvg's ``client_learning_rate`` are
the scenario's ``client.lr``, so a strategy's view of the clients cannot disagree with
what the clients do.
"""

from __future__ import annotations

from typing import Annotated, Any

from flwr.serverapp.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvgM,
    FedMedian,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
    Strategy,
)

from fedsim.scenario.tables import Bounds, ScenarioError
from strategies.algorithm import algorithm
from strategies.context import StrategyContext

Rate = Annotated[float, Bounds(gt=0)]  # a learning rate, a step
Decay = Annotated[float, Bounds(ge=0, lt=1)]  # a momentum or moment decay
Malicious = Annotated[int | None, Bounds(ge=0)]  # f; None: the attackers expected per round


@algorithm(central_dp=True)
def fedavgm(*, server_learning_rate: Rate = 1.0, server_momentum: Decay = 0.0, **flower: Any) -> Strategy:
    """Hsu et al. 2019: server momentum on the averaged update (with 1 and 0: plain FedAvg)."""
    return FedAvgM(server_learning_rate=server_learning_rate, server_momentum=server_momentum, **flower)


@algorithm(central_dp=True)
def fedadam(
    *,
    eta: Rate = 0.1,
    beta_1: Decay = 0.9,
    beta_2: Decay = 0.99,
    tau: Rate = 1e-3,
    context: StrategyContext,
    **flower: Any,
) -> Strategy:
    """Reddi et al. 2021, Adaptive Federated Optimization: Adam on the server (eta: its rate;
    tau: adaptivity, larger is closer to SGD)."""
    lr = context.scenario.client.lr
    return FedAdam(eta=eta, eta_l=lr, beta_1=beta_1, beta_2=beta_2, tau=tau, **flower)


@algorithm(central_dp=True)
def fedyogi(
    *,
    eta: Rate = 0.01,
    beta_1: Decay = 0.9,
    beta_2: Decay = 0.99,
    tau: Rate = 1e-3,
    context: StrategyContext,
    **flower: Any,
) -> Strategy:
    """Reddi et al. 2021: Yogi on the server."""
    lr = context.scenario.client.lr
    return FedYogi(eta=eta, eta_l=lr, beta_1=beta_1, beta_2=beta_2, tau=tau, **flower)


@algorithm(central_dp=True)
def fedadagrad(*, eta: Rate = 0.1, tau: Rate = 1e-3, context: StrategyContext, **flower: Any) -> Strategy:
    """Reddi et al. 2021: Adagrad on the server."""
    return FedAdagrad(eta=eta, eta_l=context.scenario.client.lr, tau=tau, **flower)


@algorithm()
def qfedavg(*, q: Annotated[float, Bounds(ge=0)] = 0.1, context: StrategyContext, **flower: Any) -> Strategy:
    """Li et al. 2020, Fair Resource Allocation: q = 0 is FedAvg, larger q favours worse-off
    clients.  The Lipschitz constant is estimated as 1 / (the clients' learning rate)."""
    return QFedAvg(client_learning_rate=context.scenario.client.lr, q=q, **flower)


@algorithm()
def fedmedian(**flower: Any) -> Strategy:
    """Yin et al. 2018: coordinate-wise median."""
    return FedMedian(**flower)


@algorithm()
def fedtrimmedavg(*, beta: Annotated[float, Bounds(ge=0, lt=0.5)] = 0.2, **flower: Any) -> Strategy:
    """Yin et al. 2018: coordinate-wise mean after cutting ``beta`` of the values at each end."""
    return FedTrimmedAvg(beta=beta, **flower)


@algorithm()
def krum(*, num_malicious_nodes: Malicious = None, context: StrategyContext, **flower: Any) -> Strategy:
    """Blanchard et al. 2017: the one update closest to its ``n - f - 2`` nearest neighbours."""
    f = _tolerated("krum", num_malicious_nodes, context)
    return Krum(num_malicious_nodes=f, **flower)


@algorithm()
def multikrum(
    *,
    num_malicious_nodes: Malicious = None,
    num_nodes_to_select: Annotated[int | None, Bounds(ge=1)] = None,
    context: StrategyContext,
    **flower: Any,
) -> Strategy:
    """Blanchard et al. 2017: the average of the ``m`` best-scored updates; ``m`` unset is
    n - f, as El Mhamdi et al. 2018 do (Flower's default, 1, is plain Krum)."""
    f = _tolerated("multikrum", num_malicious_nodes, context)
    n = context.scenario.train_cohort(context.num_clients)
    if num_nodes_to_select is not None and num_nodes_to_select > n:
        raise ScenarioError(
            "strategy.params.num_nodes_to_select", f"expected at most the {n} clients per round"
        )
    m = num_nodes_to_select if num_nodes_to_select is not None else n - f
    return MultiKrum(num_malicious_nodes=f, num_nodes_to_select=m, **flower)


@algorithm()
def bulyan(*, num_malicious_nodes: Malicious = None, context: StrategyContext, **flower: Any) -> Strategy:
    """El Mhamdi et al. 2018: Multi-Krum selection, then a coordinate-wise trimmed mean."""
    return Bulyan(num_malicious_nodes=_tolerated("bulyan", num_malicious_nodes, context), **flower)


def _tolerated(name: str, given: int | None, context: StrategyContext) -> int:
    """``f`` for Krum, Multi-Krum and Bulyan, if the round samples enough clients for it."""
    scenario, population = context.scenario, context.num_clients
    f = scenario.assumed_malicious(population, given)
    n = scenario.train_cohort(population)
    needed = 4 * f + 3 if name == "bulyan" else 2 * f + 3  # Bulyan: n >= 4f + 3; Krum: n > 2f + 2
    if n < needed:
        raise ScenarioError(
            "strategy.fraction_train",
            f"{name!r} needs at least {needed} clients per round with f = {f} malicious, "
            f"but strategy.fraction_train samples {n}",
        )
    return f
