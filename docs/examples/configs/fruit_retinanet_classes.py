# The same model with components named by class: `type=` takes the class itself in a Python
# config, so the name is checked when the file runs and greps to its definition.
from my_detbox.channel_mapper import ChannelMapper
from my_detbox.tiny_backbone import TinyConvNet

from detbox.models.detectors import RetinaNet

_base_ = "fruit_retinanet.py"

model = dict(
    type=RetinaNet,
    backbone=dict(type=TinyConvNet, widths=[16, 32, 64]),
    neck=dict(type=ChannelMapper, in_channels=[16, 32, 64]),
)
