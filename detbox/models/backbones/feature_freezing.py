"""Freezing the early part of a backbone.

:class:`StagedFreezing` serves detbox's own staged backbones (ResNet, HRNet): frozen stages,
FrozenBN and ``norm_eval`` BN statistics. timm and torchvision networks do not share ResNet's
``conv1``/``layer1..4`` names, but both register their modules in the order they run. "Freeze up
to level k" is then every parameter of the modules registered before the module that produces
feature level k.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from detbox.errors import ConfigError
from detbox.models.layers.norm import BATCH_NORMS

__all__ = ["StagedFreezing", "freeze", "keep_eval", "modules_before", "set_batch_norms_eval"]


def modules_before(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The modules of ``model`` registered before the first module named in ``names``.

    Args:
        model: the network (its ``named_modules()`` order is taken as execution order).
        names: spellings of the boundary module's qualified name (e.g. ``'stages.1'`` and
            ``'stages_1'``); the first one found ends the list.

    Returns:
        Modules before the boundary (the root excluded), containers included: a container
        of the boundary comes before it too, so use them through :func:`freeze` and
        :func:`keep_eval`, which touch each module's own parameters and flag only.

    Raises:
        ConfigError: no module has any of the names (freezing everything silently instead
            would be worse than failing).
    """
    wanted = set(names)
    found = []
    for name, module in model.named_modules():
        if name in wanted:
            return found
        if name:
            found.append(module)
    raise ConfigError(f"cannot freeze up to module {' / '.join(names)}: "
                      f"{type(model).__name__} has no module of that name")


def set_batch_norms_eval(model: nn.Module) -> None:
    """Put every BN / SyncBN layer of ``model`` (subclasses included) into eval mode."""
    for module in model.modules():
        if isinstance(module, BATCH_NORMS):
            module.eval()


def freeze(modules: Sequence[nn.Module]) -> None:
    """No gradient for the modules' own (non-recursive) parameters, and eval mode for them."""
    for module in modules:
        for param in module.parameters(recurse=False):
            param.requires_grad_(False)
    keep_eval(modules)


def keep_eval(modules: Sequence[nn.Module]) -> None:
    """Eval mode for each module itself, not its children (a container may hold later parts)."""
    for module in modules:
        module.training = False


class StagedFreezing:
    """Frozen stages and BN statistics for a backbone built of a stem and numbered stages.

    The backbone (an ``nn.Module`` listing this class first among its bases) sets
    ``frozen_stages`` (-1: none, 0: the stem, k: the stem and stages 1..k), ``norm`` and
    ``norm_eval``, and lists the modules those stages are made of in ``_frozen_modules()``.
    """

    frozen_stages: int
    norm: str
    norm_eval: bool

    def _frozen_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def frozen_parts(self) -> list[str]:
        """What never changes from its initial value while training, in words (empty: nothing).

        Frozen stages, FrozenBN layers and BN statistics kept in eval mode (``norm_eval``) only
        make sense on pretrained weights; the detector warns when they got none.
        """
        parts = []
        if self.frozen_stages >= 0:
            stages = "" if self.frozen_stages == 0 else (
                f" and stage{'s' if self.frozen_stages > 1 else ''} "
                + ", ".join(str(i + 1) for i in range(self.frozen_stages)))
            parts.append(f"the stem{stages} (frozen_stages={self.frozen_stages})")
        if self.norm == "FrozenBN":
            parts.append("every norm layer (norm='FrozenBN')")
        elif self.norm in ("BN", "SyncBN") and self.norm_eval:
            parts.append(f"the {self.norm} statistics (norm_eval=True)")
        return parts

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True):  # noqa: ANN201 (returns self, an nn.Module)
        """Switch modes, keeping frozen stages and (with ``norm_eval``) BN layers in eval."""
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
            if self.norm_eval:
                set_batch_norms_eval(self)
        return self
