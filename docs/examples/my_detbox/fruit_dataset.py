"""A dataset: a middle-format file whose classes live with the code."""

from detbox.data import CustomDataset
from detbox.registry import DATASETS


@DATASETS.register
class FruitDataset(CustomDataset):
    """Apples, bananas and cherries in detbox's middle format (see docs/datasets.md)."""

    CLASSES = ("apple", "banana", "cherry")
