"""What a run writes and shows: the run folder, its rows and summary, progress, comparisons, plots.

- ``run_dir``: the run folder (scenario.toml, metrics.jsonl, summary.json, model.pt), one writer;
- ``records``: a round's row and the run's summary; ``rows``: reading metrics.jsonl back;
- ``progress``: the console; ``tensorboard``: TensorBoard logs;
- ``comparison`` and ``plots``: the table and figures of several runs;
- ``statetree``, ``runlock``, ``outdir``: files written atomically, the folder's lock, output checks.
"""
