"""Fuzz the native .epk loader (atheris, libFuzzer's engine). Any input must either load or raise an
edgepack error / ValueError: a crash, a hang or another exception is a finding.

    python tests/fuzz/fuzz_loader.py CORPUS_DIR -runs=5000
"""
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import numpy as np

    import edgepack
    from edgepack import _native

_PATH = os.path.join(tempfile.mkdtemp(prefix="epk-fuzz-"), "input.epk")


def test_one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    try:
        session = _native.Session(_PATH, 1)
    except (edgepack.EdgepackError, ValueError):
        return
    # It loaded: it must also run without crashing on zero inputs. A mutated header can declare a
    # multi-GB arena that the runtime would legitimately fill; that is memory, not a bug, so only
    # small ones are run.
    if session.arena_bytes > 64 << 20:
        return
    arrays = [np.zeros(i["shape"], i["dtype"]) for i in session.inputs]
    try:
        session.run(arrays, False)
    except (edgepack.EdgepackError, ValueError):
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
