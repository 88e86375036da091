"""Evaluation and training data for the runner: ``inputs`` and integer ``labels`` tensors, from
a ``torch.save`` dict (``.pt``) or a NumPy archive (``.npz``)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A data set that cannot be used, with the reason."""


@dataclass(frozen=True)
class Dataset:
    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_dataset(path: Path) -> Dataset:
    """``inputs`` (float) and ``labels`` (class indices) of the file at ``path``."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as archive:
                raw = {key: torch.from_numpy(archive[key]) for key in ("inputs", "labels")}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            raw = {key: loaded[key] for key in ("inputs", "labels")}
    except (OSError, KeyError, ValueError, RuntimeError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: needs 'inputs' and 'labels' ({error})") from None
    inputs, labels = raw["inputs"].float(), raw["labels"].long()
    if inputs.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise DataError(f"{path}: {inputs.shape[0]} inputs but labels of shape {labels.shape}")
    return Dataset(inputs, labels)
