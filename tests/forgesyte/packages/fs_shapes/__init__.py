"""A modern ForgeSyte plugin: a ``tools`` dict with string and callable handlers."""
