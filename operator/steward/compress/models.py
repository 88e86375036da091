"""Loading the model to compress: a TorchScript file, a whole module saved with ``torch.save``,
a state dict with the ``module.path:ClassName`` that builds it, or a sentence-transformers model
folder (local files only: nothing is fetched from a hub)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from steward.api.v1alpha1.compressionjob import ModelFormat


class ModelError(ValueError):
    """A model that cannot be loaded, with the reason."""


def load_model(
    path: Path,
    model_format: ModelFormat,
    architecture: str | None = None,
    architecture_args: dict[str, Any] | None = None,
) -> nn.Module:
    """The model at ``path`` in eval mode on the CPU."""
    try:
        model = _load(path, model_format, architecture, architecture_args or {})
    except (OSError, RuntimeError, ImportError, AttributeError, TypeError) as error:
        raise ModelError(f"{path}: cannot load as {model_format.value}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{path}: holds a {type(model).__name__}, not a torch module")
    return model.eval()


def _load(
    path: Path, model_format: ModelFormat, architecture: str | None, args: dict[str, Any]
) -> Any:
    if model_format == ModelFormat.TORCH_SCRIPT:
        return torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    if model_format == ModelFormat.TORCH_SAVE:
        # A whole pickled module: only for models the user trusts (as torch.load says).
        return torch.load(path, map_location="cpu", weights_only=False)
    if model_format == ModelFormat.STATE_DICT:
        if architecture is None:
            raise ModelError("a StateDict model needs its architecture ('module.path:ClassName')")
        module_name, _, class_name = architecture.partition(":")
        model = getattr(importlib.import_module(module_name), class_name)(**args)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model
    if model_format == ModelFormat.SENTENCE_TRANSFORMERS:
        from sentence_transformers import SentenceTransformer  # noqa: PLC0415 (optional)

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    raise ModelError(f"{model_format.value} models are not supported by this runner")
