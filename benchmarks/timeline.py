"""When the first client call came: Ray's task events, for the start-up column of the reports."""

from __future__ import annotations

import time

TASK_EVENTS_S = 2.0  # Ray's workers report task events every second (task_events_report_interval_ms)


def first_client_call() -> float:
    """When a client actor began executing its first message (Flower's ``ClientAppActor.run``),
    from the task events Ray's workers report about once a second; 0 if none is found.
    Called from the server at the last round's end: Flower shuts Ray down after the run."""
    import ray

    time.sleep(TASK_EVENTS_S)
    starts = [e["ts"] / 1e6 for e in ray.timeline() if e.get("cat") == "task::ClientAppActor.run"]
    return min(starts, default=0.0)
