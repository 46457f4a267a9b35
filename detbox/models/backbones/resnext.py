"""ResNeXt backbone (Xie et al., "Aggregated Residual Transformations", CVPR 2017).

ResNeXt is ResNet whose bottleneck 3x3 conv is split into ``groups`` parallel paths of
``base_width`` channels each (at the first stage; doubling per stage), which torchvision builds
with ``ResNet(Bottleneck, layers, groups=, width_per_group=)``. So this is ``ResNet`` with
those two numbers: frozen stages, norms, the folded frozen-BN path, non-local blocks and
deformable convs (a grouped deformable conv keeps the groups) all work as they do there, and
torchvision-format ImageNet state dicts load key for key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from torchvision.models import resnet as tv_resnet

from detbox.models.backbones.resnet import ResNet, _torchvision_resnet
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["ResNeXt"]


@MODELS.register
class ResNeXt(ResNet):
    """ResNeXt returning the feature maps of selected stages (``depth-groups x base_width d``).

    ImageNet weights (``init_cfg=dict(backbone_checkpoint=...)``): torchvision publishes
    ``torchvision://resnext50_32x4d``, ``torchvision://resnext101_32x8d`` and
    ``torchvision://resnext101_64x4d``. Every other variant (ResNeXt-101 32x4d of the classic
    detection zoo, ResNeXt-152, ResNeXt-50 with other widths) loads from a file path (or URL)
    holding a state dict in torchvision's layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
    ``layer1.0.downsample.0``).

    Args:
        depth: 50, 101 or 152 (bottleneck blocks only).
        groups: parallel paths of each bottleneck's 3x3 conv (the "cardinality", 32 or 64).
        base_width: channels per path at the first stage (4 or 8); a stage's 3x3 conv has
            ``groups * base_width * 2**stage`` channels, its output the same as ResNet's.
        style, out_indices, num_stages, frozen_stages, norm, norm_eval, zero_init_residual,
            non_local_stages, non_local, dcn, stage_with_dcn, conv_cfg, plugins: as for ``ResNet``.
    """

    def __init__(
        self,
        *,
        depth: Literal[50, 101, 152] = 101,
        style: Literal["pytorch", "caffe"] = "pytorch",
        groups: Annotated[int, Positive] = 32,
        base_width: Annotated[int, Positive] = 4,
        out_indices: Sequence[int] = (1, 2, 3),
        num_stages: Literal[1, 2, 3, 4] = 4,
        frozen_stages: Annotated[int, Range(ge=-1, le=4)] = 1,
        norm: str = "FrozenBN",
        norm_eval: bool = True,
        zero_init_residual: bool = False,
        non_local_stages: Sequence[int] = (),
        non_local: Mapping | None = None,
        dcn: Mapping | None = None,
        stage_with_dcn: Sequence[bool] = (False, False, False, False),
        conv_cfg: Mapping | None = None,
        plugins: Sequence[Mapping] = (),
    ) -> None:
        # Read by _torchvision_net, which ResNet.__init__ calls (plain ints: safe to set before
        # nn.Module.__init__).
        self.groups = groups
        self.base_width = base_width
        super().__init__(depth=depth, style=style, out_indices=out_indices, num_stages=num_stages,
                         frozen_stages=frozen_stages, norm=norm, norm_eval=norm_eval,
                         zero_init_residual=zero_init_residual,
                         non_local_stages=non_local_stages, non_local=non_local,
                         dcn=dcn, stage_with_dcn=stage_with_dcn, conv_cfg=conv_cfg,
                         plugins=plugins)

    def _torchvision_net(self, depth: int, norm: str, zero_init_residual: bool
                         ) -> tv_resnet.ResNet:
        return _torchvision_resnet(depth, norm, zero_init_residual, groups=self.groups,
                                   width_per_group=self.base_width)

    @property
    def arch(self) -> str:
        """torchvision's name of this architecture (``'resnext101_32x8d'``)."""
        return f"resnext{self.depth}_{self.groups}x{self.base_width}d"

    @property
    def arch_title(self) -> str:
        return f"ResNeXt-{self.depth} {self.groups}x{self.base_width}d"
