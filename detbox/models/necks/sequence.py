"""Necks applied one after another (e.g. an FPN, then a BFP balancing its levels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.registry import MODELS

__all__ = ["NeckSequence"]


@MODELS.register
class NeckSequence(nn.Sequential):
    """Necks run one after another, each on the previous one's output maps.

    Checkpoint keys are ``neck.0.*``, ``neck.1.*``, ... (e.g. Libra R-CNN's FPN, then BFP).

    Args:
        necks: ``MODELS`` configs (or modules) of the necks, first applied first.
        in_channels: the backbone's channels, given to the first neck when its config leaves
            them out (the detector fills this from the backbone, as for a single neck).
    """

    def __init__(
        self,
        *,
        necks: Sequence[Mapping[str, Any] | nn.Module],
        in_channels: Sequence[int] | None = None,
    ) -> None:
        if not necks:
            raise ConfigError("NeckSequence needs at least one neck")
        first = necks[0]
        if isinstance(first, Mapping) and first.get("in_channels") is None \
                and in_channels is not None:
            first = {**first, "in_channels": list(in_channels)}
        super().__init__(MODELS.build(first), *(MODELS.build(n) for n in necks[1:]))

    @property
    def out_channels(self) -> Any:
        """The last neck's output channels."""
        return getattr(self[-1], "out_channels", None)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:  # type: ignore[override]
        """Backbone maps, finest first -> the last neck's maps, finest first."""
        for neck in self:
            feats = neck(feats)
        return list(feats)
