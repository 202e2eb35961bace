"""TensorBoard logs of a run: ``[results] tensorboard = true`` (or ``--tensorboard``).

Each run folder gets a ``tensorboard/`` folder of event files, one scalar per metric per
round, written with torch's ``SummaryWriter`` (the ``tensorboard`` package).  TensorBoard
pointed at a comparison's folder shows each variant as a run of its own:
``tensorboard --logdir runs/<name>-compare-<time>``.  A resumed run appends to the same
folder; TensorBoard joins the files by step (the round).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fedsim.results.records import RoundRecord

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

FOLDER = "tensorboard"
# RoundRecord field -> TensorBoard tag; grouped as TensorBoard shows them, one section each.
TAGS = {
    "accuracy": "eval/accuracy",
    "loss": "eval/loss",
    "train_loss": "train/loss",
    "fed_accuracy": "federated/accuracy",
    "fed_loss": "federated/loss",
    "round_time_s": "time/round_s",
    "eval_time_s": "time/eval_s",
    "simulated_time_s": "time/simulated_s",
    "virtual_time_s": "time/virtual_s",
    "clients_late": "clients/late",
    "bytes_sent": "bytes/sent",
    "bytes_received": "bytes/received",
    "clients_failed": "clients/failed",
    "epsilon": "privacy/epsilon",
}


class TensorBoardLog:
    """Writes each round's record as it ends; the strategy's own metrics under ``strategy/``."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # loads tensorboard: only when asked

        self.writer: SummaryWriter = SummaryWriter(log_dir=str(run_dir / FOLDER))

    def write(self, record: RoundRecord) -> None:
        row = record.row()
        for field, tag in TAGS.items():
            value = row.get(field)
            if isinstance(value, int | float):
                self.writer.add_scalar(tag, value, record.round)
        for name, value in record.extra.items():
            self.writer.add_scalar(f"strategy/{name}", value, record.round)
        self.writer.flush()  # a killed run keeps its rounds here too

    def close(self) -> None:
        self.writer.close()
