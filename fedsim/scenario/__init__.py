"""The scenario: what one experiment is, as typed, validated data (no torch, no Flower).

- ``tables``: TOML tables to frozen dataclasses, every key checked once (ScenarioError, Params, Bounds);
- ``sections``: the scenario tree (Scenario, DataConfig, ModelConfig, ...) and its cross-field rules;
- ``privacy``: the ``[privacy]`` section;
- ``plugins``: the one door for models, data sets, strategies and local updates (the registry);
  ``signatures``: their params checked; ``objects``: Python objects given to the API;
- ``files``: scenario files, the built-in quickstart, ``--set`` overrides;
- ``variants``: the runs of a comparison; ``describe``: the privacy guarantee in words;
- ``counts`` and ``seeding``: cohort sizes and the named random streams derived from the seed.
"""
