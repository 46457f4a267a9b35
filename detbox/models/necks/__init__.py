"""Necks: backbone maps -> the multi-scale maps the heads read."""

from detbox.models.necks.bfp import BFP
from detbox.models.necks.fpn import FPN
from detbox.models.necks.hrfpn import HRFPN
from detbox.models.necks.nas_fpn import NASFPN
from detbox.models.necks.pafpn import PAFPN
from detbox.models.necks.sequence import NeckSequence

__all__ = ["BFP", "FPN", "HRFPN", "NASFPN", "NeckSequence", "PAFPN"]
