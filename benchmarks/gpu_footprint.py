"""``python -m benchmarks.gpu_footprint --out F.json``: the numbers GPU sharing rests on, measured.

On a machine with a GPU (benchmarks/device.sh), in one fresh process:

* ``context_bytes``: what creating a CUDA context takes (the GPU otherwise idle), against
  clients/gpu.py's ``CONTEXT_BYTES`` allowance;
* per workload, one client's footprint as ``client_gpus = "auto"`` measures it
  (fedsim/sim/gpu_measure.py), and the share and clients per GPU "auto" would pick here;
* ``cap``: whether the allocator cap holds: under a share of 0.02, a 2.5 GiB tensor must
  fail as GpuShareExceeded and a 0.25 GiB one must then succeed (last: the cap is per process).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch

from benchmarks.workloads import Workload
from clients import gpu
from fedsim.data import find_federated
from fedsim.sim import gpu_measure

WORKLOADS = (
    Workload(model="cnn", local_epochs=5),
    Workload(model="2nn", local_epochs=5),
    Workload(model="cnn", local_epochs=5, engine="cohort"),
)
CAP_SHARE = 0.02  # 2.8 GiB of an H200, 1.8 GiB of it for tensors


def footprints(data_dir: str) -> list[dict[str, object]]:
    cpus, gpus = len(os.sched_getaffinity(0)), torch.cuda.device_count()
    rows: list[dict[str, object]] = []
    for workload in WORKLOADS:
        scenario = workload.scenario()
        data = find_federated(scenario.data, scenario.seed, data_dir or None)[0]
        found = gpu_measure.footprint(scenario, data)
        limit = gpu.max_clients(scenario.resources, cpus, gpus)
        fraction, per_gpu = gpu.fraction_for(found.need_bytes, found.total_bytes, limit)
        auto = {"client_gpus": fraction, "clients_per_gpu": per_gpu, "max_clients_by_cpus": limit}
        rows.append(
            {"workload": workload.label, "engine": workload.engine, **dataclasses.asdict(found), **auto}
        )
    return rows


def cap_check() -> dict[str, object]:
    share = gpu.claim(CAP_SHARE, torch.device("cuda", 0))
    result: dict[str, object] = {"share": CAP_SHARE, "cap_bytes": share.cap_bytes}
    try:
        gpu.within_share(
            share, [0], lambda: torch.empty(int(2.5 * gpu.GIB), dtype=torch.uint8, device="cuda")
        )
        result["over_cap"] = "allocated: the cap did NOT hold"
    except gpu.GpuShareExceeded as error:
        result["over_cap"] = str(error)
    small = gpu.within_share(share, [1], lambda: torch.ones(gpu.GIB // 4, dtype=torch.uint8, device="cuda"))
    result["under_cap_after"] = f"allocated {small.numel()} bytes, sum {int(small.sum())}"
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_footprint", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", default=os.environ.get("FEDSIM_DATA_DIR", ""))
    p.add_argument("--dry-run", action="store_true", help="say what would be measured")
    args = p.parse_args()
    if args.dry_run:
        print(f"would measure: the CUDA context, {[w.label for w in WORKLOADS]}, the cap at {CAP_SHARE}")
        return
    free, total = torch.cuda.mem_get_info(0)  # the first call: it creates this process's context
    output: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "total_bytes": total}
    output["context_bytes"] = total - free
    output["context_allowance_bytes"] = gpu.CONTEXT_BYTES
    output["footprints"] = footprints(args.data_dir)
    output["cap"] = cap_check()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2))
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
