"""Real deployment: the same ServerApp and ClientApp on a SuperLink and SuperNodes over TLS.

``commands`` (certs, server, client, submit, launch) on top; ``superlink`` and ``gateway``
(the only port other machines reach); ``flower`` (Flower's own commands and flags); ``launch``,
``submit``, ``processes``, ``certs``, ``probe``; ``serverapp`` (the ServerApp ``flwr run`` starts)
and ``wire`` (its events, followed by ``fedsim submit``).
"""
