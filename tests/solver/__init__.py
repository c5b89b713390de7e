"""Tests of :mod:`solver`: pure computation, no servers."""
