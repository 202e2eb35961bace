"""FedAvg against FedNova from Python alone: a notebook written as a script.

    python examples/compare_api/compare.py              # 20 rounds each, under a minute on 2 cores
    python examples/compare_api/compare.py --rounds 3   # a quick look
    python examples/compare_api/compare.py --set client.local_epochs=2 --set stragglers.fraction=0

Each ``# %%`` cell runs on its own in Jupyter or VS Code.  It uses fedsim's Python API
only (``fedsim.compare``, ``Comparison.runs``, ``RunResult.metrics``): both strategies
run the FedNova example's scenario (examples/fednova/scenario.toml) on the same clients,
partitions, samples and stragglers, one given by name and one as the class itself.
Then matplotlib draws accuracy and FedNova's ``tau_eff`` per round into
``fedavg_vs_fednova.png`` next to the runs' results.
"""

# %% Setup: the scenario, and the user's strategy as a Python object
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import fedsim

# A notebook has no __file__: there, this folder as seen from the repository root.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path("examples/compare_api").resolve()
SCENARIO = HERE.parent / "fednova" / "scenario.toml"
sys.path.insert(0, str(SCENARIO.parent))  # where fednova.py is (fedsim searches it too)

from fednova import FedNova  # noqa: E402  (the class, not its name: fedsim ships it to Ray's workers)

parser = argparse.ArgumentParser(description="Compare FedAvg with FedNova and plot accuracy per round.")
parser.add_argument("--rounds", type=int, help="rounds per run (default: the scenario's 20)")
parser.add_argument("--out", type=Path, help="results folder (default: runs/fednova-compare-<time>)")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as fedsim run --set")
args, _ = parser.parse_known_args()  # known only: Jupyter passes its own arguments

# %% Run both strategies on the same clients (the scenario's client.update reports tau_i)
comparison = fedsim.compare(
    SCENARIO,
    strategies=["fedavg", FedNova],
    set=[*args.set, *([f"rounds={args.rounds}"] if args.rounds else [])],
    out=args.out,
)
print(comparison.table)

# %% Plot accuracy per round, and the effective steps FedNova normalized by
figure = Figure(figsize=(9, 3.6), layout="constrained")
accuracy, work = figure.subplots(1, 2)
for run in comparison.runs:
    rows = run.metrics  # metrics.jsonl: one dict per round
    evaluated = [r for r in rows if r["accuracy"] is not None]
    accuracy.plot(
        [r["round"] for r in evaluated], [r["accuracy"] for r in evaluated], marker="o", label=run.label
    )
    if all("tau_eff" in r for r in rows):  # FedNova's own metric
        work.plot([r["round"] for r in rows], [r["tau_eff"] for r in rows], marker="o", label=run.label)
accuracy.set(xlabel="round", ylabel="test accuracy", title="FedAvg vs FedNova")
work.set(xlabel="round", ylabel="local steps", title="tau_eff = sum_i p_i tau_i", yscale="log")
for axes in (accuracy, work):
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
png = comparison.out / "fedavg_vs_fednova.png"
figure.savefig(png, dpi=120)
print(f"wrote {png}")
