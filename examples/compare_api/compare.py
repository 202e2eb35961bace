"""FedAvg against a user's algorithm from Python alone: a notebook written as a script.

    python examples/compare_api/compare.py              # 20 rounds each, under a minute on 2 cores
    python examples/compare_api/compare.py --rounds 3   # a quick look
    python examples/compare_api/compare.py --set strategy.params.keep=0.01

Each ``# %%`` cell runs on its own in Jupyter or VS Code.  It uses fedsim's Python API
only (``fedsim.compare``, ``Comparison.runs``, ``RunResult.metrics``): both strategies run the
error-feedback example's scenario (examples/error_feedback/scenario.toml) on the same clients,
partitions and samples, FedAvg given by name and the user's top-k algorithm as the class itself.
Then matplotlib draws accuracy and the clients' residual norm per round into
``fedavg_vs_topk.png`` next to the runs' results.
"""

# %% Setup: the scenario, and the user's algorithm as a Python object
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import fedsim

# A notebook has no __file__: there, this folder as seen from the repository root.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path("examples/compare_api").resolve()
SCENARIO = HERE.parent / "error_feedback" / "scenario.toml"
sys.path.insert(0, str(SCENARIO.parent))  # where topk.py is (fedsim searches it too)

from topk import TopK  # noqa: E402  (the class, not its name: fedsim ships it to Ray's workers)

parser = argparse.ArgumentParser(description="Compare FedAvg with top-k error feedback, plotted per round.")
parser.add_argument("--rounds", type=int, help="rounds per run (default: the scenario's 20)")
parser.add_argument("--out", type=Path, help="results folder (default: runs/error_feedback-compare-<time>)")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as fedsim run --set")
args, _ = parser.parse_known_args()  # known only: Jupyter passes its own arguments

# %% Run both on the same clients (the class keeps its params: strategy.params.keep)
comparison = fedsim.compare(
    SCENARIO,
    strategies=["fedavg", TopK],
    set=[*args.set, *([f"rounds={args.rounds}"] if args.rounds else [])],
    out=args.out,
)
print(comparison.table)

# %% Plot accuracy per round, and what the clients' residuals hold back
figure = Figure(figsize=(9, 3.6), layout="constrained")
accuracy, held = figure.subplots(1, 2)
for run in comparison.runs:
    rows = run.metrics  # metrics.jsonl: one dict per round
    evaluated = [r for r in rows if r["accuracy"] is not None]
    accuracy.plot(
        [r["round"] for r in evaluated], [r["accuracy"] for r in evaluated], marker="o", label=run.label
    )
    if all("residual_norm" in r for r in rows):  # the algorithm's own metric
        held.plot([r["round"] for r in rows], [r["residual_norm"] for r in rows], marker="o", label=run.label)
accuracy.set(xlabel="round", ylabel="test accuracy", title="FedAvg vs top-k with error feedback")
held.set(
    xlabel="round", ylabel="||e_i||, mean over the round's clients", title="what the residuals hold back"
)
for axes in (accuracy, held):
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
png = comparison.out / "fedavg_vs_topk.png"
figure.savefig(png, dpi=120)
print(f"wrote {png}")
