"""Live latency end to end: a ping's acceptance → dispatcher screens and customer pages.

Run it with ``python -m bench.latency``; :mod:`bench.latency.__main__` says what it measures.
"""
