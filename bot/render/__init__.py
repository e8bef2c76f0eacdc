"""Rendering: one formatter for numbers, one renderer per kind of message."""
