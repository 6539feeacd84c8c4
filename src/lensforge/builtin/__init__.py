"""Plugins that ship with LensForge, registered through the same entry points as any other."""
