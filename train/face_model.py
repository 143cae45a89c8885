"""The face classifier in PyTorch: a MobileNetV2-style inverted-residual trunk and a small
plain-CNN branch on a shared stem, their pooled features concatenated before the head.

The same architecture is rebuilt in Keras by ``dsrter.convert.face_keras`` for TFLite export;
padding is explicit (symmetric) everywhere so both frameworks compute identical maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from dsrter.edge.labels import NUM_CLASSES

# (expansion t, output channels c, repeats n, first stride s), as in MobileNetV2.
IR_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 2, 2),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


@dataclass
class FaceNetSpec:
    """Shape of the hybrid network; stored in checkpoints and the model card."""

    input_size: int = 48
    width: float = 0.5
    stem_channels: int = 32
    last_channels: int = 512
    cnn_channels: tuple[int, ...] = (64, 128, 256)  # the shipped model's
    dropout: float = 0.3
    ir_settings: tuple[tuple[int, int, int, int], ...] = field(default=IR_SETTINGS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceNetSpec":
        d = dict(d)
        d["cnn_channels"] = tuple(d.get("cnn_channels", cls.cnn_channels))
        d["ir_settings"] = tuple(tuple(s) for s in d.get("ir_settings", IR_SETTINGS))
        return cls(**d)

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """Expanded list of (in_c, out_c, stride, expansion) per inverted-residual block."""
        out, in_c = [], make_divisible(self.stem_channels * self.width)
        for t, c, n, s in self.ir_settings:
            out_c = make_divisible(c * self.width)
            for i in range(n):
                out.append((in_c, out_c, s if i == 0 else 1, t))
                in_c = out_c
        return out


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: str | None = "relu6"):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act == "relu6":
            layers.append(nn.ReLU6(inplace=True))
        elif act == "relu":
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBN(cin, hidden, k=1))
        layers += [ConvBN(hidden, hidden, k=3, stride=stride, groups=hidden), ConvBN(hidden, cout, k=1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class HybridFaceNet(nn.Module):
    """Input (N, 1, S, S) scaled to [-1, 1]; output logits (N, 7)."""

    def __init__(self, spec: FaceNetSpec | None = None):
        super().__init__()
        self.spec = spec or FaceNetSpec()
        s = self.spec
        stem_c = make_divisible(s.stem_channels * s.width)
        self.stem = ConvBN(1, stem_c, k=3, stride=1)
        blocks = s.blocks()
        self.trunk = nn.Sequential(*[InvertedResidual(*b) for b in blocks])
        self.trunk_head = ConvBN(blocks[-1][1], s.last_channels, k=1)
        # Plain CNN branch on the stem output: two 3x3 convs + max-pool per stage.
        cnn: list[nn.Module] = [nn.MaxPool2d(2)]
        cin = stem_c
        for c in s.cnn_channels:
            cnn += [ConvBN(cin, c, act="relu"), ConvBN(c, c, act="relu"), nn.MaxPool2d(2)]
            cin = c
        self.cnn = nn.Sequential(*cnn)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(s.dropout)
        self.head = nn.Linear(s.last_channels + cin, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        a = self.pool(self.trunk_head(self.trunk(x))).flatten(1)
        b = self.pool(self.cnn(x)).flatten(1)
        return self.head(self.dropout(torch.cat([a, b], dim=1)))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
