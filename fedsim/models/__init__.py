"""Models: the built-in ones (``builtin``) and building any model from the scenario (``build``)."""
