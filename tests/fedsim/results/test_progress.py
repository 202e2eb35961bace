"""The console shows the ``fedsim`` logger's lines while a run goes (fedsim/results/progress.py)."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from fedsim.results.progress import ConsoleReporter


def test_fedsim_log_lines_print_on_the_console_during_a_run_only() -> None:
    out = io.StringIO()
    logger = logging.getLogger("fedsim")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with ConsoleReporter(Console(file=out, width=200)):
        logger.info("cohort engine: a worker trained [3] clients")
        logger.warning("cohort engine: a worker ran out of memory")
    logger.info("after the run: not on this console")
    text = out.getvalue()
    assert "cohort engine: a worker trained [3] clients" in text  # markup-like text kept as is
    assert "warning: cohort engine: a worker ran out of memory" in text
    assert "after the run" not in text
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
