"""Placeholder package: filled in by later issues."""
