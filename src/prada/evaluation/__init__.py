"""Evaluation: batched generation, answer extraction (extract.py holds every answer rule) and metrics."""
