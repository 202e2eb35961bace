"""Driver memory for many clients' personal state: the server's store (fedsim/sim/client_store.py)
under a Ditto-like load, without Ray (the store is what grows with the population).

10,000 clients each keep a personal model (``--params`` float32 values; MNIST's logreg has
7,850); every round 10 of them train and hand their new state back, until every client has one.
Past ``client_store.RAM_BYTES`` (256 MiB) the states on disk leave RAM: the driver's resident
set stays near the budget while the states add up to more.  Prints one JSON line::

    python -m benchmarks.client_state_memory [--clients 10000] [--params 7850]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

from fedsim.sim.client_store import RAM_BYTES, ClientStore

MB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--params", type=int, default=7_850)
    parser.add_argument("--per-round", type=int, default=10)
    args = parser.parse_args()
    process = psutil.Process()
    before = process.memory_info().rss
    peak_rss = peak_resident = 0
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        store = ClientStore(Path(folder))
        order = rng.permutation(args.clients)
        for server_round, first in enumerate(range(0, args.clients, args.per_round), start=1):
            for partition in order[first : first + args.per_round]:
                old = store.get(int(partition))  # as a sampled client's message would read it
                weights = rng.standard_normal(args.params).astype(np.float32)
                if old is not None:
                    weights += old["personal"]["w"]
                store.put(int(partition), {"personal": {"w": weights}})
            store.commit(server_round)
            peak_resident = max(peak_resident, store.resident_bytes)
            peak_rss = max(peak_rss, process.memory_info().rss)
        on_disk = sum(p.stat().st_size for p in Path(folder).iterdir())
        states = len(store)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "clients_with_state": states,
                "state_mb_each": round(args.params * 4 / MB, 4),
                "states_total_mb": round(args.clients * args.params * 4 / MB, 1),
                "ram_budget_mb": RAM_BYTES // MB,
                "peak_resident_states_mb": round(peak_resident / MB, 1),
                "peak_rss_growth_mb": round((peak_rss - before) / MB, 1),
                "on_disk_mb": round(on_disk / MB, 1),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
