"""Evaluation and training data for the runner: ``inputs`` and integer ``labels`` tensors, from
a ``torch.save`` dict (``.pt``) or a NumPy archive (``.npz``) (the Accuracy metric); or texts
labelled by topic, from JSON (the Top1Retrieval metric, for sentence-embedding models)."""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class RetrievalSet:
    """Texts labelled by topic: each text queries the others, and the top-1 neighbour by cosine
    similarity of the model's embeddings is right when it shares the text's label."""

    texts: list[str]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.texts)


def load_evaluation(path: Path) -> Dataset | RetrievalSet:
    """A retrieval set (``.json``: ``texts`` and ``labels``) or a classification data set."""
    if path.suffix != ".json":
        return load_dataset(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        texts, labels = [str(t) for t in raw["texts"]], torch.tensor(raw["labels"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: needs 'texts' and 'labels' ({error})") from None
    if len(texts) != labels.shape[0] or len(texts) < 2:
        raise DataError(f"{path}: {len(texts)} texts but {labels.shape[0]} labels")
    return RetrievalSet(texts, labels)


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
