"""Pure planning: normalise desired and observed, diff them, and build the Plan value object.

Imports nothing that does I/O (enforced by the import-linter contract in pyproject.toml).
"""
