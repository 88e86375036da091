"""What the compression runner hands the CompressionJob controller: the container's termination
message (at most 4096 bytes, as the kubelet keeps), JSON of :class:`RunnerResult`."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from steward.api.schema import StewardModel
from steward.api.v1alpha1.compressionjob import VariantResult

#: What the kubelet keeps of a termination message.
TERMINATION_MESSAGE_BYTES: Final = 4096
#: Where the runner's container writes it.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"


class RunnerResult(StewardModel):
    """The runner's verdict: every variant's figures, the chosen one and where it is."""

    variants: Annotated[list[VariantResult], Field(max_length=32)]
    chosen_variant: str | None = None
    accepted: bool
    artifact_uri: str | None = Field(default=None, alias="artifactUri")


def encode(result: RunnerResult) -> str:
    """Compact JSON that fits the termination message: reasons are cut (first ones kept,
    each shortened) until it does."""
    for keep, width in ((16, 512), (2, 160), (1, 100), (1, 40), (0, 0)):
        trimmed = result.model_copy(
            update={
                "variants": [
                    v.model_copy(update={"reasons": [r[:width] for r in v.reasons[:keep]]})
                    for v in result.variants
                ]
            }
        )
        text = trimmed.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) <= TERMINATION_MESSAGE_BYTES:
            return text
    raise ValueError("the runner's result does not fit a termination message")
