"""Persistence: SQLAlchemy models, async engine, migrations and encryption of personal data.

The bottom layer: imports nothing else of ours.
"""
