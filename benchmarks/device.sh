#!/usr/bin/env bash
# GPU sharing measured on a machine with an NVIDIA GPU, in one command (about 5 minutes, at most 8).
#
# Prepare, once, on the machine you start from (it needs pip's registry; the GPU machine has none):
#   bash ../shared/device/make-wheels.sh .whl dp-accounting==0.6.0 dm-tree==0.1.10
#   echo "/.whl/" >> .git/info/exclude
# Run on the GPU machine, from the project's root, with .whl carried along:
#   bash benchmarks/device.sh                 # writes under $OUT (else benchmarks/results/device/)
#   bash benchmarks/device.sh --dry-run       # here, anywhere: the plan, nothing run or installed
#
# It installs the wheels into /tmp/site (the machine's own torch stays: see make-wheels.sh),
# writes MNIST-shaped random data (benchmarks/fake_mnist.py), then
#   1. benchmarks/gpu_footprint.py: the CUDA context, each workload's footprint and the share
#      "auto" picks, and whether the allocator cap holds (footprint.json);
#   2. benchmarks/run.py: McMahan's CNN, 100 clients, 10 per round, E = 5, B = 10, 3 rounds:
#      fedsim at 1, 4 and 10 clients per GPU (client_gpus 1, 0.25, 0.1), and at 0.1 fedsim's
#      cohort engine, the plain loop on the GPU and the quickstart-style Flower client with
#      num_gpus = 0.1 (gpu.json, run.log).  Each system gets at most 60 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/results/device}
run_args=(--models cnn --epochs 5 --rounds 3 --client-gpus 1,0.25,0.1 --child-timeout 60
          --systems fedsim,fedsim-cohort,plain-1thread,quickstart)
if [[ "${1:-}" == "--dry-run" ]]; then
  python3 -m benchmarks.gpu_footprint --out "$out/footprint.json" --dry-run
  exec python3 -m benchmarks.run "${run_args[@]}" --dry-run
fi
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
python3 -c "import flwr, ray, dp_accounting, fedsim.sim.engine" || { echo "device.sh: a package is missing"; exit 1; }
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -m benchmarks.fake_mnist /tmp/fedsim-data || exit 1
export FEDSIM_DATA_DIR=/tmp/fedsim-data
timeout 90 python3 -m benchmarks.gpu_footprint --out "$out/footprint.json" 2>&1 | tee "$out/footprint.log"
python3 -m benchmarks.run "${run_args[@]}" --out "$out/gpu.json" 2>&1 | tee "$out/run.log"
