"""Regenerate the bundled example used by `edgepack demo`:
  digits_cnn.onnx      the DigitsCNN of edgepack.models.digits, trained with a fixed seed;
  digits_samples.npz   100 held-out digits (images [N,1,8,8] float32, labels int64).

    python -m edgepack.examples.make_examples
"""
from pathlib import Path

import numpy as np
import onnx
import torch

from edgepack.frontends.torch import to_onnx
from edgepack.models.digits import train_digits_cnn

HERE = Path(__file__).parent


def main() -> None:
    model, data = train_digits_cnn()
    proto = to_onnx(model, torch.from_numpy(data.x_test[:1]), input_names=["image"], output_names=["logits"])
    onnx.save(proto, HERE / "digits_cnn.onnx")
    np.savez_compressed(HERE / "digits_samples.npz", images=data.x_test[:100], labels=data.y_test[:100])
    print(f"wrote {HERE / 'digits_cnn.onnx'} and {HERE / 'digits_samples.npz'}")


if __name__ == "__main__":
    main()
