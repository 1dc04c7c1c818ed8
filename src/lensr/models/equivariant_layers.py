"""Group convolutions for the rotation groups that are exact on a pixel grid: C4 and D4.

A feature map of ``C`` *fields* in the regular representation of a group G (order 4 for
C4, 8 for D4) is a tensor (N, C * |G|, H, W), channel ``c * |G| + i`` holding the response of
field ``c`` to the ``i``-th transformed copy of its filter. Transforming the input image by
``h`` (a 90-degree rotation and/or a flip about the image centre) transforms every field by
``h`` in space and permutes its |G| channels (:func:`act_on_fields`); group pooling then gives
invariant channels. The weights are the base filters; each forward pass builds the full
``Conv2d`` weight from rotated/reflected copies (cheap next to the convolution itself).

This is written out (about 200 lines) rather than taken from e2cnn 0.2.3: that package installs
here, but its flip groups raise under numpy 2 (``ndarray.tostring``), and its R2Conv adds and
drops ``filter``/``expanded_bias`` buffers on ``train()``/``eval()``, so state-dict keys depend
on the mode and strict safetensors checkpoints fail to load. 45-degree rotations (C8/D8) are
only approximate on a pixel grid anyway; C4/D4 are its exact subgroups.

>>> g = Group("d4")
>>> conv = GroupConv(8, 8, 3, group=g)      # (N, 64, H, W) -> (N, 64, H, W)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from lensr.errors import LensrError

GROUP_NAMES = ("c4", "d4")


def transform(x: torch.Tensor, element: tuple[int, int]) -> torch.Tensor:
    """Apply ``element = (r, m)``, i.e. mirror left-right ``m`` times, then rotate by ``r``
    quarter turns (counter-clockwise), to the last two dimensions of ``x``."""
    r, m = element
    if m:
        x = torch.flip(x, (-1,))
    return torch.rot90(x, r, (-2, -1)) if r else x


class Group:
    """C4 (four rotations) or D4 (rotations and reflections) acting on the pixel grid.

    ``elements[i]`` is ``(r, m)`` for :func:`transform`; ``inv_mul[g][k]`` is the index of
    ``g^-1 k``. The table is found by composing the transforms on a probe array, so it follows
    :func:`transform` whatever its convention.
    """

    def __init__(self, name: str = "d4"):
        if name not in GROUP_NAMES:
            raise LensrError(f"group must be one of {', '.join(GROUP_NAMES)}, not {name!r}")
        self.name = name
        self.elements = [(r, m) for m in range((name == "d4") + 1) for r in range(4)]
        self.order = len(self.elements)
        probe = torch.arange(9.0).reshape(3, 3)
        images = [transform(probe, e) for e in self.elements]

        def index(img):
            return next(i for i, ref in enumerate(images) if torch.equal(ref, img))

        mul = [[index(transform(images[k], g)) for k in range(self.order)] for g in self.elements]
        identity = index(probe)
        inverse = [next(j for j in range(self.order) if mul[i][j] == identity)
                   for i in range(self.order)]  # fmt: skip
        self.inv_mul = [[mul[inverse[g]][k] for k in range(self.order)] for g in range(self.order)]

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


def act_on_fields(x: torch.Tensor, element: int, group: Group) -> torch.Tensor:
    """How regular fields (N, C * |G|, H, W) transform when the input is transformed by
    ``group.elements[element]``: ``out[:, c, k] = T_h(x[:, c, h^-1 k])``."""
    n, ch, h, w = x.shape
    fields = x.reshape(n, ch // group.order, group.order, h, w)
    perm = group.inv_mul[element]
    out = transform(fields[:, :, perm], group.elements[element])
    return out.reshape(n, ch, *out.shape[-2:])


def _init_(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int) -> None:
    """``nn.Conv2d``'s default initialisation for the given fan-in."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        weight.uniform_(-bound, bound)  # = kaiming_uniform_(a=sqrt(5))
        if bias is not None:
            bias.uniform_(-bound, bound)


class _GroupLayer(nn.Module):
    def __init__(self, group: Group, out_fields: int, bias: bool):
        super().__init__()
        self.group = group
        self.bias = nn.Parameter(torch.empty(out_fields)) if bias else None

    def expanded_bias(self, copies: int) -> torch.Tensor | None:
        return None if self.bias is None else self.bias.repeat_interleave(copies)


class LiftingConv(_GroupLayer):
    """Ordinary channels (N, in_ch, H, W) -> regular fields (N, out_fields * |G|, H, W).

    Odd ``kernel_size`` with 'same' padding; field ``c``'s copy ``k`` uses ``T_k(W[c])``.
    """

    def __init__(self, in_ch: int, out_fields: int, kernel_size: int, *, group: Group,
                 bias: bool = True):  # fmt: skip
        super().__init__(group, out_fields, bias)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_fields, in_ch, kernel_size, kernel_size))
        _init_(self.weight, self.bias, in_ch * kernel_size**2)

    def full_weight(self) -> torch.Tensor:
        copies = [transform(self.weight, e) for e in self.group.elements]
        return torch.stack(copies, 1).flatten(0, 1)  # (out * |G|, in, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.expanded_bias(self.group.order)
        return F.conv2d(x, self.full_weight(), bias, padding=self.padding)


class GroupConv(_GroupLayer):
    """Regular fields -> regular fields; odd ``kernel_size``, 'same' padding.

    Output copy ``g`` of field ``c`` sees input copy ``k`` of field ``d`` through
    ``T_g(W[c, d, g^-1 k])``: |G| times fewer weights than a plain conv of the same width.
    """

    def __init__(self, in_fields: int, out_fields: int, kernel_size: int, *, group: Group,
                 bias: bool = True):  # fmt: skip
        super().__init__(group, out_fields, bias)
        self.padding = kernel_size // 2
        shape = (out_fields, in_fields, group.order, kernel_size, kernel_size)
        self.weight = nn.Parameter(torch.empty(shape))
        _init_(self.weight, self.bias, in_fields * group.order * kernel_size**2)

    def full_weight(self) -> torch.Tensor:
        g = self.group
        copies = [transform(self.weight[:, :, g.inv_mul[i]], e) for i, e in enumerate(g.elements)]
        return torch.stack(copies, 1).flatten(0, 1).flatten(1, 2)  # (out*|G|, in*|G|, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.expanded_bias(self.group.order)
        return F.conv2d(x, self.full_weight(), bias, padding=self.padding)


class EquivariantUpsampler(_GroupLayer):
    """Regular fields (N, in_fields * |G|, H, W) -> ordinary channels (N, out_ch, sH, sW) by a
    transposed convolution whose kernel for input copy ``k`` is ``T_k(V)``.

    The kernel is 8x8 for even scales and 9x9 for odd ones, with padding (k - s) / 2, so that
    its centre falls on the centre of each s x s output block: the output is exactly s * H by
    s * W and rotating or flipping the input rotates or flips the output, for any input size.
    """

    def __init__(self, in_fields: int, out_ch: int, scale: int, *, group: Group):
        super().__init__(group, out_ch, True)
        self.scale = scale
        self.kernel_size = 8 if scale % 2 == 0 else 9
        self.padding = (self.kernel_size - scale) // 2
        shape = (in_fields, out_ch, self.kernel_size, self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape))
        _init_(self.weight, self.bias, out_ch * self.kernel_size**2)  # ConvTranspose2d's fan-in

    def full_weight(self) -> torch.Tensor:
        copies = [transform(self.weight, e) for e in self.group.elements]
        return torch.stack(copies, 1).flatten(0, 1)  # (in * |G|, out, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(
            x, self.full_weight(), self.bias, stride=self.scale, padding=self.padding
        )


class FieldPReLU(nn.PReLU):
    """PReLU with one slope per field, shared by its |G| copies (so it stays equivariant)."""

    def __init__(self, fields: int, *, group: Group):
        super().__init__(fields)
        self.order = group.order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        return super().forward(x.reshape(n, ch // self.order, self.order, h, w)).reshape(x.shape)


class FieldBatchNorm(nn.BatchNorm3d):
    """Batch norm with statistics and affine parameters per field, pooled over its copies."""

    def __init__(self, fields: int, *, group: Group):
        super().__init__(fields)
        self.order = group.order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        return super().forward(x.reshape(n, ch // self.order, self.order, h, w)).reshape(x.shape)


def group_pool(x: torch.Tensor, group: Group) -> torch.Tensor:
    """Max over each field's |G| copies: (N, C * |G|, H, W) -> invariant (N, C, H, W)."""
    n, ch, h, w = x.shape
    return x.reshape(n, ch // group.order, group.order, h, w).amax(2)


def symmetric_downsample(x: torch.Tensor) -> torch.Tensor:
    """Halve H and W by averaging, in a way that commutes exactly with rotations and flips.

    Along an even dimension: 2-pixel blocks (they map onto blocks under a flip). Along an odd
    one: 3-pixel windows centred on pixels 0, 2, ..., n - 1 (a set a flip maps onto itself).
    """
    kernel = tuple(2 if n % 2 == 0 else 3 for n in x.shape[-2:])
    padding = tuple(k // 2 if k == 3 else 0 for k in kernel)
    return F.avg_pool2d(x, kernel, stride=2, padding=padding, count_include_pad=False)
