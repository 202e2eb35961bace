"""Per-client against cohort training of one round's clients, in one process (no Flower, no Ray).

    python -m benchmarks.cohort                      # CNN and 2NN, 10 clients x 600 samples, E=1, B=10
    python -m benchmarks.cohort --models mlp --repeats 5 --threads 1
    python -m benchmarks.cohort --capture            # also the captured step (clients/capture.py)

The data are MNIST-shaped random tensors (1x28x28, 10 classes; 600 samples per client is
MNIST's 60,000 over 100 clients).  "per-client" is ``clients.training.train`` run client
after client from the same global model, as the per-client engine's workers do;
"cohort" is ``clients.cohort.train_cohort`` on all of them at once.  Both draw each
client's batches from the same seeded stream, and the table also shows the largest
parameter difference between them.  With ``--capture``, "captured" is
``clients.capture.train_captured`` (one compiled step of shape (clients, B, ...)); its
compile time, paid by the warm-up run, is reported apart.  Times are the median of
``--repeats`` runs after one warm-up run; nothing is asserted about them.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from clients import capture, training
from clients.cohort import train_cohort
from clients.cohort_schedule import Member
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import ClientConfig, ModelConfig

SHAPE = (1, 28, 28)
CLASSES = 10


def client_data(clients: int, samples: int) -> list[Split]:
    g = torch.Generator().manual_seed(0)
    return [
        Split(torch.rand(samples, *SHAPE, generator=g), torch.randint(0, CLASSES, (samples,), generator=g))
        for _ in range(clients)
    ]


def streams(clients: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 + i) for i in range(clients)]


def per_client(model: nn.Module, data: list[Split], cfg: ClientConfig) -> list[dict[str, torch.Tensor]]:
    results = []
    for split, rng in zip(data, streams(len(data)), strict=True):
        local = copy.deepcopy(model)
        training.train(local, split, cfg, rng)
        results.append({n: p.detach() for n, p in local.named_parameters()})
    return results


def cohort(model: nn.Module, data: list[Split], cfg: ClientConfig) -> list[dict[str, torch.Tensor]]:
    members = [
        Member(split, rng, cfg.local_epochs) for split, rng in zip(data, streams(len(data)), strict=True)
    ]
    return [r.params for r in train_cohort(model, members, cfg)]


def captured(model: nn.Module, data: list[Split], cfg: ClientConfig) -> list[dict[str, torch.Tensor]]:
    members = [
        Member(split, rng, cfg.local_epochs) for split, rng in zip(data, streams(len(data)), strict=True)
    ]
    done = capture.train_captured(model, members, cfg, len(members))
    if done is None:
        raise RuntimeError("torch.compile could not compile the cohort step (see the log)")
    return [r.params for r in done.results]


def timed(
    run: Callable[[], list[dict[str, torch.Tensor]]], repeats: int
) -> tuple[float, list[dict[str, torch.Tensor]]]:
    result = run()  # warm-up: allocator, kernels, vmap's first trace
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def max_difference(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> float:
    return max(float((x[n] - y[n]).abs().max()) for x, y in zip(a, b, strict=True) for n in x)


def bench(name: str, args: argparse.Namespace) -> dict[str, float | str | int]:
    model = build_model(ModelConfig(name=name), SHAPE, CLASSES, seed=0)
    data = client_data(args.clients, args.samples)
    cfg = ClientConfig(local_epochs=args.epochs, batch_size=args.batch_size, lr=0.05)
    slow, expected = timed(lambda: per_client(model, data, cfg), args.repeats)
    fast, actual = timed(lambda: cohort(model, data, cfg), args.repeats)
    row: dict[str, float | str | int] = {
        "model": name,
        "clients": args.clients,
        "steps_per_client": args.epochs * -(-args.samples // args.batch_size),
        "per_client_s": slow,
        "cohort_s": fast,
        "speedup": slow / fast,
        "max_abs_difference": max_difference(expected, actual),
    }
    if args.capture:
        started = time.perf_counter()
        captured(model, data, cfg)  # compiles: its own column, not in the median
        row["compile_s"] = time.perf_counter() - started
        quick, graphed = timed(lambda: captured(model, data, cfg), args.repeats)
        row["captured_s"], row["captured_speedup"] = quick, slow / quick
        row["captured_max_abs_difference"] = max_difference(expected, graphed)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp", "logreg"])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--samples", type=int, default=600, help="per client")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (a Ray worker uses client_cpus)"
    )
    parser.add_argument("--capture", action="store_true", help="also time the captured (compiled) step")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(name, args) for name in args.models]
    print(
        f"{args.clients} clients x {args.samples} samples, E={args.epochs}, B={args.batch_size}, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'model':<8}{'per-client s':>14}{'cohort s':>10}{'speed-up':>10}{'max |diff|':>12}")
    for row in rows:
        print(
            f"{row['model']:<8}{row['per_client_s']:>14.3f}{row['cohort_s']:>10.3f}"
            f"{row['speedup']:>9.2f}x{row['max_abs_difference']:>12.2e}"
        )
    for row in rows if args.capture else []:
        print(
            f"{row['model']:<8} captured {row['captured_s']:.3f} s ({row['captured_speedup']:.2f}x "
            f"per-client), compiled in {row['compile_s']:.1f} s, max |diff| "
            f"{row['captured_max_abs_difference']:.2e}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
