"""Benchmarks: fedsim against a plain training loop and a quickstart-style Flower client.

``python -m benchmarks.run`` (or ``make bench``) measures them side by side; see README.md here.
"""
