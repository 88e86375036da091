"""The base model of every Steward API type, and cross-field rules stated once, enforced twice.

Field names are Python's ``snake_case``; on the wire they are Kubernetes' ``camelCase`` with
acronyms kept upper-case (``gpus_per_worker`` -> ``gpusPerWorker``, ``cost_per_hour_usd`` ->
``costPerHourUSD``), as in ``podIP`` or ``hostIP``.

A :class:`Rule` holds a CEL expression for the apiserver and the equivalent Python predicate for
``steward validate``. The CRD generator publishes every rule as an ``x-kubernetes-validations``
entry, and the model validator checks the same rules, naming the field each one is about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

_ACRONYMS: Final = {
    "usd": "USD",
    "kwh": "KWh",
    "gpu": "GPU",
    "gpus": "GPUs",
    "cpu": "CPU",
    "co2e": "CO2e",
    "uri": "URI",
    "slo": "SLO",
    "pue": "PUE",
    "id": "ID",
}


def kubernetes_camel(name: str) -> str:
    """``snake_case`` -> Kubernetes ``camelCase``; the first word stays as written."""
    head, *tail = name.split("_")
    return head + "".join(_ACRONYMS.get(word, word.capitalize()) for word in tail)


@dataclass(frozen=True)
class Rule:
    """A cross-field rule of one object.

    Attributes:
        cel: The CEL expression the apiserver evaluates with ``self`` bound to the object.
        message: What is wrong, in words a person can act on.
        field: The wire name of the field the error points at, relative to the object
            (``"maxReplicas"``), or ``""`` for the object as a whole.
        holds: The same rule in Python, evaluated on the validated model instance.
    """

    cel: str
    message: str
    field: str
    holds: Callable[[Any], bool]

    def to_validation(self) -> dict[str, str]:
        """The rule as an ``x-kubernetes-validations`` entry."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field:
            entry["fieldPath"] = f".{self.field}"
            entry["reason"] = "FieldValueInvalid"
        return entry


def _publish_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    rules: tuple[Rule, ...] = getattr(model, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_validation() for rule in rules]


class StewardModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused, rules enforced."""

    model_config = ConfigDict(
        alias_generator=kubernetes_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        # Defaults go through the same validation as input (0 becomes Decimal("0"), and so on).
        validate_default=True,
        json_schema_extra=_publish_rules,
    )

    #: Cross-field rules of this type; subclasses override.
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).rules:
            if not rule.holds(self):
                raise PydanticCustomError(
                    "rule", "{message}", {"message": rule.message, "field": rule.field}
                )
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as the apiserver stores it: camelCase keys, JSON values, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_Item = TypeVar("_Item")


def _no_duplicates(items: list[_Item]) -> list[_Item]:
    seen: list[_Item] = []
    for item in items:
        if item in seen:
            raise ValueError(f"lists each value at most once, {item!r} is repeated")
        seen.append(item)
    return items


#: A list whose values are distinct: an ``x-kubernetes-list-type: set`` on the apiserver.
UniqueList = Annotated[
    list[_Item],
    AfterValidator(_no_duplicates),
    Field(json_schema_extra={"x-kubernetes-list-type": "set"}),
]


def field_path(location: Sequence[int | str]) -> str:
    """``("spec", "thresholds", 2, "percent")`` -> ``"spec.thresholds[2].percent"``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error as ``field.path: message``, for CLI and logs."""
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field_path(list(first['loc']))}: {message}"


_Model = TypeVar("_Model", bound=BaseModel)


def valid_objects(raws: Iterable[Mapping[str, Any]], model: type[_Model]) -> list[_Model]:
    """Each of ``raws`` that parses as ``model``, in order; the others are left out (their own
    controller reports them on the object, and an invalid object decides nothing)."""
    parsed = []
    for raw in raws:
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError:
            continue
    return parsed
