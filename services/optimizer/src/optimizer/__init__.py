"""Flywheel optimizer: performance windows, live accuracy, advice, drift and threshold alerts.

Run with ``python -m optimizer``; see docs/optimizer.md.
"""
