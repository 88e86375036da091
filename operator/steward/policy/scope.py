"""Which workloads a Budget's or CostPolicy's scope selects. Pure.

GPU pods that belong to no Steward workload are charged too (a team's namespace budget should
see every GPU it uses); they have no workload labels and no cost center, so only scopes that
select by namespace alone (``namespaces``, ``namespaceSelector``) cover them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from steward.api.v1alpha1.common import (
    LabelSelector,
    LabelSelectorRequirement,
    ScopeSelector,
    SelectorOperator,
)
from steward.cost.usage import WorkloadRef


@dataclass(frozen=True)
class WorkloadFacts:
    """What a scope can select a workload by."""

    ref: WorkloadRef
    labels: Mapping[str, str] = field(default_factory=dict)
    cost_center: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return bool(self.ref.kind)


def selects(scope: ScopeSelector, workload: WorkloadFacts) -> bool:
    """Whether every criterion ``scope`` sets holds for ``workload``."""
    if scope.namespaces and workload.ref.namespace not in scope.namespaces:
        return False
    if scope.namespace_selector is not None and not matches(
        scope.namespace_selector, workload.namespace_labels
    ):
        return False
    if scope.selector is not None and (
        not workload.managed or not matches(scope.selector, workload.labels)
    ):
        return False
    return not scope.cost_centers or workload.cost_center in scope.cost_centers


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """``metav1.LabelSelector`` semantics: every matchLabels pair and every expression hold."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(_holds(requirement, labels) for requirement in selector.match_expressions)


def _holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    value = labels.get(requirement.key)
    if requirement.operator == SelectorOperator.IN:
        return present and value in requirement.values
    if requirement.operator == SelectorOperator.NOT_IN:
        return not present or value not in requirement.values
    if requirement.operator == SelectorOperator.EXISTS:
        return present
    return not present
