"""The numpy reference executor: the oracle every kernel is checked against."""
from .executor import run_graph
from .ops import REFERENCE, run_node

__all__ = ["run_graph", "run_node", "REFERENCE"]
