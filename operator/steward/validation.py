"""Check manifests of Steward's kinds offline, naming the exact field and reason of every error.

``steward validate`` and the tests use this; the apiserver checks the same rules through the
generated CRDs. Documents of other API groups are skipped (a policy directory may hold a
Namespace or a Deployment beside the Steward objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from steward.api.constants import API_VERSION, GROUP
from steward.api.schema import field_path
from steward.api.v1alpha1 import KINDS
from steward.api.v1alpha1.common import CustomResource

YAML_SUFFIXES: Final = (".yaml", ".yml")

#: pydantic's wording, where a person reading a manifest needs other words.
_MESSAGES: Final = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document.

    Attributes:
        source: ``file`` or ``file#N`` (N counts documents from 1) the problem was found in.
        path: Dotted path of the field from the document's root (``spec.limits.usd``), or ``""``.
        message: Why the value is refused.
        kind: The document's kind, when it has one.
        name: The document's ``metadata.name``, when it has one.
    """

    source: str
    path: str
    message: str
    kind: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        subject = f" {self.kind}/{self.name or '?'}" if self.kind else ""
        where = f" {self.path}:" if self.path else ""
        return f"{self.source}{subject}:{where} {self.message}"


@dataclass
class Report:
    """What a validation run found."""

    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _problem_from_error(error: ErrorDetails, source: str, kind: str, name: str | None) -> Problem:
    location: list[int | str] = list(error["loc"])
    context = error.get("ctx") or {}
    if error["type"] == "rule" and context.get("field"):
        location.append(context["field"])
    message = _MESSAGES.get(error["type"], error["msg"])
    if error["type"].startswith("value_error"):
        message = message.removeprefix("Value error, ")
    return Problem(source, field_path(location), message, kind, name)


def validate_document(document: Any, source: str) -> list[Problem]:
    """All problems of one parsed YAML document; empty when it is a valid Steward object.

    A document of another API group yields no problems (callers skip it); use
    :func:`is_steward_document` to tell the two apart.
    """
    if not isinstance(document, Mapping):
        return [Problem(source, "", "a manifest must be a mapping with apiVersion and kind")]
    kind, api_version = document.get("kind"), document.get("apiVersion")
    name = _name_of(document)
    if api_version != API_VERSION:
        return [
            Problem(
                source,
                "apiVersion",
                f"must be {API_VERSION!r} (got {api_version!r})",
                kind if isinstance(kind, str) else None,
                name,
            )
        ]
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None or not isinstance(kind, str):
        return [Problem(source, "kind", f"must be one of {', '.join(KINDS)} (got {kind!r})")]
    try:
        resource = model.model_validate(document)
    except ValidationError as error:
        return [_problem_from_error(e, source, kind, name) for e in error.errors()]
    return _metadata_problems(resource, source)


def _metadata_problems(resource: CustomResource, source: str) -> list[Problem]:
    meta, info = resource.metadata, resource.crd
    problems = []
    if meta.name is None and meta.generate_name is None:
        problems.append(
            Problem(source, "metadata.name", "required field is missing", resource.kind, None)
        )
    if meta.name is not None and len(meta.name) > info.max_name_length:
        problems.append(
            Problem(
                source,
                "metadata.name",
                f"must be at most {info.max_name_length} characters (Steward derives child names "
                "from it)",
                resource.kind,
                meta.name,
            )
        )
    if info.scope == "Cluster" and meta.namespace is not None:
        problems.append(
            Problem(
                source,
                "metadata.namespace",
                f"{resource.kind} is cluster-scoped and takes no namespace",
                resource.kind,
                meta.name,
            )
        )
    return problems


def _name_of(document: Mapping[str, Any]) -> str | None:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


def is_steward_document(document: Any) -> bool:
    """Whether a parsed document claims Steward's API group (valid or not)."""
    if not isinstance(document, Mapping):
        return document is not None
    api_version = document.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/", 1)[0] == GROUP


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """``(source, document)`` for each non-empty document of a YAML file; raises YAMLError."""
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    several = len([d for d in documents if d is not None]) > 1
    for index, document in enumerate(documents, start=1):
        if document is not None:
            yield (f"{path}#{index}" if several else str(path)), document


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """The YAML files named, and those below the directories named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES))
        else:
            found.append(path)
    return found


def validate_paths(paths: Iterable[Path]) -> Report:
    """Validate every Steward document in the given files and directories."""
    report = Report()
    for path in yaml_files(paths):
        try:
            documents = list(_documents(path))
        except OSError as error:
            report.problems.append(Problem(str(path), "", f"cannot read: {error.strerror}"))
            continue
        except yaml.YAMLError as error:
            report.problems.append(Problem(str(path), "", f"not valid YAML: {_yaml_reason(error)}"))
            continue
        for source, document in documents:
            if not is_steward_document(document):
                report.skipped.append(source)
                continue
            report.checked.append(source)
            report.problems.extend(validate_document(document, source))
    return report


def _yaml_reason(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem
