"""Two small CNN families for the demo: a VGG-like and a ResNet-like network.

Both take ``(N, 3, 32, 32)`` float images in [0, 1] and return ``(N, num_classes)``
logits; both use BatchNorm after every convolution and end in global average
pooling and one linear layer. Stage ``i`` (``i = 0, 1, 2``) has ``width * 2**i``
channels and halves the resolution after the first stage, as in the originals.
Module names follow torchvision's habits, so filter indices read naturally
(``features.conv2_1``, ``layer2.0.conv1``, ``layer2.0.downsample.0``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from evtools.adapter import positive_int

_STAGES = 3


class VGGSmall(nn.Module):
    """VGG-like network: stages of (conv3x3-BN-ReLU) x ``convs_per_stage`` then 2x2 max-pool.

    Parameters
    ----------
    width : int
        Channels of the first stage; stages have ``width``, ``2 width``, ``4 width``.
    num_classes : int
        Number of output logits.
    convs_per_stage : int
        Convolutions per stage; the network has ``3 * convs_per_stage`` convs.
    in_channels : int
        Channels of the input images.

    Notes
    -----
    Input ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``; H and W
    must be at least 4 (three poolings).
    """

    def __init__(self, width=16, num_classes=10, convs_per_stage=2, in_channels=3):
        super().__init__()
        for value, name in ((width, "width"), (num_classes, "num_classes"),
                            (convs_per_stage, "convs_per_stage"), (in_channels, "in_channels")):
            positive_int(value, name)
        layers = OrderedDict()
        c_in = in_channels
        for stage in range(1, _STAGES + 1):
            c_out = width * 2 ** (stage - 1)
            for j in range(1, convs_per_stage + 1):
                layers[f"conv{stage}_{j}"] = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
                layers[f"bn{stage}_{j}"] = nn.BatchNorm2d(c_out)
                layers[f"relu{stage}_{j}"] = nn.ReLU(inplace=True)
                c_in = c_out
            layers[f"pool{stage}"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet basic block: two conv3x3-BN with an identity or 1x1-conv-BN shortcut.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int
        Stride of the first convolution (and of the shortcut).
    """

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        """Block output ``(N, c_out, H / stride, W / stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNetSmall(nn.Module):
    """ResNet-like network: a conv3x3 stem, three stages of basic blocks, global pooling.

    Parameters
    ----------
    width : int
        Channels of the stem and the first stage; stages have ``width``,
        ``2 width``, ``4 width`` channels, the last two at stride 2.
    num_classes : int
        Number of output logits.
    blocks_per_stage : int
        Basic blocks per stage. The network has ``1 + 6 * blocks_per_stage``
        3x3 convs plus two 1x1 shortcut convs.
    in_channels : int
        Channels of the input images.

    Notes
    -----
    Input ``(N, in_channels, H, W)`` -> logits ``(N, num_classes)``.
    """

    def __init__(self, width=16, num_classes=10, blocks_per_stage=1, in_channels=3):
        super().__init__()
        for value, name in ((width, "width"), (num_classes, "num_classes"),
                            (blocks_per_stage, "blocks_per_stage"), (in_channels, "in_channels")):
            positive_int(value, name)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        c_in = width
        for stage in range(1, _STAGES + 1):
            c_out = width * 2 ** (stage - 1)
            blocks = []
            for b in range(blocks_per_stage):
                stride = 2 if (stage > 1 and b == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def vgg_small(width=16, num_classes=10, convs_per_stage=2):
    """A :class:`VGGSmall` (6 convs by default; 73 k parameters at width 16).

    Parameters
    ----------
    width : int
        Channels of the first stage (then doubled twice).
    num_classes : int
        Number of classes.
    convs_per_stage : int
        Convolutions per stage (3 stages).

    Returns
    -------
    VGGSmall
        Freshly initialised (seed torch before calling for reproducible weights).
    """
    return VGGSmall(width=width, num_classes=num_classes, convs_per_stage=convs_per_stage)


def resnet_small(width=16, num_classes=10, blocks_per_stage=1):
    """A :class:`ResNetSmall` (7 3x3 convs and 2 shortcut convs by default; 78 k parameters at width 16).

    Parameters
    ----------
    width : int
        Channels of the stem and first stage (then doubled twice).
    num_classes : int
        Number of classes.
    blocks_per_stage : int
        Basic blocks per stage (3 stages).

    Returns
    -------
    ResNetSmall
        Freshly initialised (seed torch before calling for reproducible weights).
    """
    return ResNetSmall(width=width, num_classes=num_classes, blocks_per_stage=blocks_per_stage)
