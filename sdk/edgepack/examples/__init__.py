"""The bundled example used by `edgepack demo` (see make_examples.py)."""
