"""Each strategy's own parameters: one frozen dataclass per strategy, ``[strategy.<name>]``.

Keys, types and bounds are checked by the scenario loader; defaults are Flower
1.42's unless a comment says otherwise.  Client-side learning rates are not
repeated here: FedOpt's ``eta_l`` and QFedAvg's ``client_learning_rate`` are the
scenario's ``client.lr``, so a strategy's view of the clients cannot disagree
with what the clients do.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsim.config import bounded


@dataclass(frozen=True)
class FedAvgParams:
    """McMahan et al. 2017: nothing to set."""


@dataclass(frozen=True)
class FedProxParams:
    """Li et al. 2020: clients add ``mu/2 * ||w - w_global||^2`` to their loss."""

    proximal_mu: float = bounded(0.0, ge=0)


@dataclass(frozen=True)
class FedAvgMParams:
    """Hsu et al. 2019: server momentum on the averaged update (with 0 and 1: plain FedAvg)."""

    server_learning_rate: float = bounded(1.0, gt=0)
    server_momentum: float = bounded(0.0, ge=0, lt=1)


@dataclass(frozen=True)
class FedAdamParams:
    """Reddi et al. 2021, Adaptive Federated Optimization: Adam on the server."""

    eta: float = bounded(0.1, gt=0)  # server learning rate
    beta_1: float = bounded(0.9, ge=0, lt=1)
    beta_2: float = bounded(0.99, ge=0, lt=1)
    tau: float = bounded(1e-3, gt=0)  # adaptivity: larger is closer to SGD


@dataclass(frozen=True)
class FedYogiParams:
    """Reddi et al. 2021: Yogi on the server."""

    eta: float = bounded(0.01, gt=0)
    beta_1: float = bounded(0.9, ge=0, lt=1)
    beta_2: float = bounded(0.99, ge=0, lt=1)
    tau: float = bounded(1e-3, gt=0)


@dataclass(frozen=True)
class FedAdagradParams:
    """Reddi et al. 2021: Adagrad on the server."""

    eta: float = bounded(0.1, gt=0)
    tau: float = bounded(1e-3, gt=0)


@dataclass(frozen=True)
class QFedAvgParams:
    """Li et al. 2020, Fair Resource Allocation: q = 0 is FedAvg, larger q favours worse-off clients."""

    q: float = bounded(0.1, ge=0)


@dataclass(frozen=True)
class FedMedianParams:
    """Yin et al. 2018: coordinate-wise median, nothing to set."""


@dataclass(frozen=True)
class FedTrimmedAvgParams:
    """Yin et al. 2018: coordinate-wise mean after cutting ``beta`` of the values at each end."""

    beta: float = bounded(0.2, ge=0, lt=0.5)


@dataclass(frozen=True)
class KrumParams:
    """Blanchard et al. 2017: the one update closest to its ``n - f - 2`` nearest neighbours."""

    # f; unset: the malicious clients expected per round under [attack] (0 without one).
    num_malicious_nodes: int | None = bounded(None, ge=0)


@dataclass(frozen=True)
class MultiKrumParams:
    """Blanchard et al. 2017: the average of the ``m`` best-scored updates."""

    num_malicious_nodes: int | None = bounded(None, ge=0)  # as for Krum
    # m; unset: n - f, as El Mhamdi et al. 2018 do (Flower's default, 1, is plain Krum).
    num_nodes_to_select: int | None = bounded(None, ge=1)


@dataclass(frozen=True)
class BulyanParams:
    """El Mhamdi et al. 2018: Multi-Krum selection, then a coordinate-wise trimmed mean."""

    num_malicious_nodes: int | None = bounded(None, ge=0)  # as for Krum


@dataclass(frozen=True)
class ScaffoldParams:
    """Karimireddy et al. 2020: control variates correct the clients' drift."""

    server_learning_rate: float = bounded(1.0, gt=0)  # eta_g of the paper


StrategyParams = (
    FedAvgParams
    | FedProxParams
    | FedAvgMParams
    | FedAdamParams
    | FedYogiParams
    | FedAdagradParams
    | QFedAvgParams
    | FedMedianParams
    | FedTrimmedAvgParams
    | KrumParams
    | MultiKrumParams
    | BulyanParams
    | ScaffoldParams
)
