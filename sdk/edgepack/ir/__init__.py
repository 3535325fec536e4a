"""The edgepack IR: a static-shape graph over a closed op set."""
from .dtypes import DType
from .graph import Graph, Node, QuantParams, Value
from .ops import SCHEMAS, schema

__all__ = ["DType", "Graph", "Node", "QuantParams", "Value", "SCHEMAS", "schema"]
