"""A scenario's guarantees in words: what ``fedsim validate`` and every run say before they start."""

from __future__ import annotations

from fedsim.scenario.sections import Scenario


def guarantee(scenario: Scenario, population: int) -> str:
    """One sentence: what is protected, by which mechanism, at which delta."""
    privacy = scenario.privacy
    assert privacy is not None
    delta = (
        f"delta = {privacy.delta:.3g}" if privacy.delta is not None else "delta = 1 / n^1.1 (set at start)"
    )
    noise = (
        privacy.noise_multiplier
        if isinstance(privacy.noise_multiplier, str)
        else f"{privacy.noise_multiplier:.4g}"
    )
    if privacy.mode == "local":
        return (
            f"privacy: client-level local DP (each update clipped to {privacy.clipping_norm:g} and noised "
            f"with multiplier {noise} before it leaves the client) protects each client's whole data, "
            f"even from the server, at {delta}; epsilon is the most any client has spent"
        )
    if privacy.mode == "sample":
        return (
            f"privacy: example-level DP (DP-SGD with Opacus in every client, per-example clipping at "
            f"{privacy.max_grad_norm:g}, noise multiplier {noise}) protects each training example, at "
            f"{delta}; epsilon is the most any client's examples have spent"
        )
    fraction = scenario.strategy.fraction_train
    sampling = (
        f"Poisson sampling with q = {fraction:g}"
        if privacy.sampling == "poisson"
        else f"{scenario.expected_cohort(population):g} sampled"
    )
    norm = privacy.clipping_norm if privacy.clipping == "fixed" else privacy.initial_clipping_norm
    return (
        f"privacy: client-level central DP (DP-FedAvg: {privacy.clipping} clipping at {norm:g} on the "
        f"{privacy.where}, noise multiplier {noise}, {sampling} of {population} clients per round) protects "
        f"each client's whole data from anyone who sees the models, at {delta}; epsilon is what the "
        "rounds so far spent"
    )
