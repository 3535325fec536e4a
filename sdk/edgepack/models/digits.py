"""scikit-learn's 8x8 handwritten digits and a small CNN trained on them in a few seconds.

The data ships with scikit-learn (no download). Training is seeded and single-threaded, so the same
weights come out on every run; with `cache_dir` the trained weights are kept there and reused.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED = 0


@dataclass
class DigitsData:
    """Float32 NCHW images in [0, 1] ([N, 1, 8, 8]) and int64 labels, split 75 / 25 stratified."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_data() -> DigitsData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.25, random_state=SEED,
                                                        stratify=labels)
    return DigitsData(x_train, y_train, x_test, y_test)


class DigitsCNN(nn.Module):
    """Conv-ReLU-MaxPool twice, then one Linear: [N, 1, 8, 8] -> [N, 10] logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, single-threaded torch (thread count changes float summation order); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def train(model: nn.Module, data: DigitsData, epochs: int, lr: float, batch_size: int = 64,
          seed: int = SEED) -> nn.Module:
    """Adam with a cosine learning-rate decay on the training split; returns the model in eval mode."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    with _deterministic(seed):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * -(-len(x) // batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def accuracy(predict: Callable[[np.ndarray], np.ndarray], data: DigitsData) -> float:
    """Test-split accuracy of `predict` (images -> logits)."""
    return float(np.mean(np.argmax(predict(data.x_test), axis=1) == data.y_test))


def torch_predict(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(images)).numpy()
    return predict


def train_cached(build: Callable[[], nn.Module], name: str, epochs: int, lr: float,
                 cache_dir: str | Path | None) -> tuple[nn.Module, DigitsData]:
    """Train `build()` on the digits, or load its weights from `cache_dir/name.pt` when present."""
    data = digits_data()
    with _deterministic(SEED):  # the initial weights are seeded too
        model = build()
    cached = Path(cache_dir) / f"{name}.pt" if cache_dir is not None else None
    if cached is not None and cached.exists():
        model.load_state_dict(torch.load(cached, weights_only=True))
        return model.eval(), data
    train(model, data, epochs, lr)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cached)
    return model, data


def train_digits_cnn(cache_dir: str | Path | None = None, epochs: int = 15) -> tuple[DigitsCNN, DigitsData]:
    """The trained DigitsCNN (eval mode) and the data split it was trained on."""
    return train_cached(DigitsCNN, f"digits_cnn_e{epochs}", epochs, 3e-3, cache_dir)
