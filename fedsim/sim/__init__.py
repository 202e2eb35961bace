"""The simulation: a scenario's rounds on Flower's Ray engine, from set-up to the last checkpoint.

``preflight`` checks the plug-ins and loads the data; ``engine`` starts Flower's simulation
(``cluster``: Ray); ``server`` runs the rounds (``rounds``: one round; ``exchange`` and
``replies``: messages out and replies screened; ``failures``, ``divergence``); ``checkpoint``
and ``clientstate`` let a stopped run go on; ``cohort_engine`` trains groups of clients per
message; ``sweep`` runs the variants of a comparison.
"""
