"""Run the loader fuzz target briefly (CI): seeded with valid artifacts, it mutates them for a few
thousand runs; the test fails if the target crashes or reports a finding."""
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgepack.backends.epk import write_epk
from edgepack.planner.memory import plan_memory
from op_harness import op_graph

FUZZER = Path(__file__).parent / "fuzz" / "fuzz_loader.py"


def _seed(corpus: Path) -> None:
    rng = np.random.default_rng(0)
    graph, _ = op_graph("MatMul", {"activation": "relu", "act_min": 0.0, "act_max": 0.0},
                        [rng.standard_normal((1, 4), np.float32), rng.standard_normal((4, 3), np.float32)],
                        consts={1})
    write_epk(graph, plan_memory(graph), corpus / "matmul.epk")
    graph, _ = op_graph("Add", {}, [rng.standard_normal((2, 3), np.float32), rng.standard_normal(3).astype(np.float32)])
    write_epk(graph, plan_memory(graph), corpus / "add.epk")


def test_loader_survives_fuzzing(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _seed(corpus)
    # libFuzzer's RSS is getrusage's ru_maxrss, which Linux seeds at exec with the spawning process's
    # high-water mark: this pytest process's, over 2 GB after the model tests, which alone tripped the
    # default 2048 MB limit. The limit is 2048 MB on top of that, so a loader that allocates gigabytes
    # is still a finding.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = subprocess.run([sys.executable, str(FUZZER), str(corpus), "-runs=4000", "-max_len=4096",
                             "-timeout=10", f"-rss_limit_mb={2048 + inherited_mb}", f"-artifact_prefix={tmp_path}/"],
                            capture_output=True, text=True, timeout=300)
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, f"fuzzer found a problem:\n{tail}"
    assert "Done 4000 runs" in tail or "DONE" in tail, tail
