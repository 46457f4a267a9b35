"""The key layout of the official HRNetV2 ImageNet checkpoints, shared by the HRNet tests."""

from __future__ import annotations


def official_layout(width: int) -> dict[str, tuple[int, ...]]:
    """Every key (and its shape) of the official HRNetV2-W<width> ImageNet checkpoint's
    backbone part, spelled out from the official implementation's module tree."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(name, out_ch, in_ch, kernel):
        keys[f"{name}.weight"] = (out_ch, in_ch, kernel, kernel)

    def bn(name, channels):
        for stat in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{name}.{stat}"] = (channels,)
        keys[f"{name}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 3), bn("bn1", 64), conv("conv2", 64, 64, 3), bn("bn2", 64)
    for b in range(4):
        p = f"layer1.{b}"
        conv(f"{p}.conv1", 64, 64 if b == 0 else 256, 1), bn(f"{p}.bn1", 64)
        conv(f"{p}.conv2", 64, 64, 3), bn(f"{p}.bn2", 64)
        conv(f"{p}.conv3", 256, 64, 1), bn(f"{p}.bn3", 256)
    conv("layer1.0.downsample.0", 256, 64, 1), bn("layer1.0.downsample.1", 256)
    previous = [256]
    for stage, modules in ((2, 1), (3, 4), (4, 3)):
        ch = [width * 2**i for i in range(stage)]
        t = f"transition{stage - 1}"
        for i, c in enumerate(ch):
            if i >= len(previous):  # the new branch, from the coarsest one
                conv(f"{t}.{i}.0.0", c, previous[-1], 3), bn(f"{t}.{i}.0.1", c)
            elif previous[i] != c:
                conv(f"{t}.{i}.0", c, previous[i], 3), bn(f"{t}.{i}.1", c)
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for i, c in enumerate(ch):
                for b in range(4):
                    for k in (1, 2):
                        conv(f"{p}.branches.{i}.{b}.conv{k}", c, c, 3)
                        bn(f"{p}.branches.{i}.{b}.bn{k}", c)
            for i in range(stage):
                for j in range(stage):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:
                        conv(f"{f}.0", ch[i], ch[j], 1), bn(f"{f}.1", ch[i])
                    for k in range(i - j):
                        out = ch[i] if k == i - j - 1 else ch[j]
                        conv(f"{f}.{k}.0", out, ch[j], 3), bn(f"{f}.{k}.1", out)
        previous = ch
    return keys
