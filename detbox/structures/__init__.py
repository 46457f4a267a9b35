from detbox.structures.instances import DetSample, ImageBatch, Instances

__all__ = ["DetSample", "ImageBatch", "Instances"]
