"""Backends emit one target format each: epk (the native runtime)."""
