"""The architectures of pycnn.applications written by hand in PyTorch, and copy_weights() to give
a twin the weights of its pycnn model -- for checking pycnn's forward pass against PyTorch's and
timing both (examples/architectures.py, tests/test_applications.py).

Each twin registers its weighted modules in the order in which pycnn's model holds its
weighted layers, so copy_weights can pair them one to one (and checks that it can). Twins run
NCHW; for a channels_last pycnn model, feed the twin x.transpose(0, 3, 1, 2) and compare with
the output moved back (to_torch_input / from_torch_output). BatchNorm eps is Keras's 1e-3.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pycnn import layers

EPSILON = 1e-3


def tf_same_padding(size, kernel, stride):
    """TensorFlow's 'same' split (before, after) for one dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """Pads like TensorFlow's 'same' (the odd cell after) for a kernel and stride; with -inf for
    max pooling."""

    def __init__(self, kernel, stride, value=0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x):
        top, bottom = tf_same_padding(x.shape[2], self.kernel, self.stride)
        left, right = tf_same_padding(x.shape[3], self.kernel, self.stride)
        return F.pad(x, (left, right, top, bottom), value=self.value)


class SeparableConv2d(nn.Module):
    """Depthwise then pointwise convolution (bias after the pointwise step), as Keras."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, depth_multiplier=1, bias=True):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels * depth_multiplier, kernel_size, padding=padding,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def bn(channels):
    return nn.BatchNorm2d(channels, eps=EPSILON)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------

def lenet5(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, classes), nn.Softmax(dim=-1))


def mnist_convnet(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, classes), nn.Softmax(dim=-1))


def cats_vs_dogs_convnet():
    modules, channels = [], 3
    for filters in (32, 64, 128, 128):
        modules += [nn.Conv2d(channels, filters, 3), nn.ReLU(), nn.MaxPool2d(2)]
        channels = filters
    return nn.Sequential(*modules, nn.Flatten(), nn.Linear(7 * 7 * 128, 512), nn.ReLU(), nn.Linear(512, 1),
                         nn.Sigmoid())


def vgg16(include_top=True, classes=1000, softmax=True):
    modules, channels = [], 3
    for filters, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            modules += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU()]
            channels = filters
        modules.append(nn.MaxPool2d(2))
    if include_top:
        modules += [nn.Flatten(), nn.Linear(7 * 7 * 512, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                    nn.Linear(4096, classes)]
        if softmax:
            modules.append(nn.Softmax(dim=-1))
    return nn.Sequential(*modules)


class BasicBlock(nn.Module):
    def __init__(self, in_channels, filters, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, stride, padding=1, bias=False)
        self.bn1 = bn(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn2 = bn(filters)
        self.downsample = None
        if stride != 1 or in_channels != filters:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, filters, 1, stride, bias=False), bn(filters))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet34(nn.Module):
    def __init__(self, include_top=True, classes=1000, softmax=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = bn(64)
        blocks, channels = [], 64
        for filters, units, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(units):
                blocks.append(BasicBlock(channels, filters, stride if i == 0 else 1))
                channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.include_top, self.softmax = include_top, softmax
        self.fc = nn.Linear(512, classes) if include_top else None

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.blocks(x)
        if not self.include_top:
            return x
        x = self.fc(x.mean(dim=(2, 3)))
        return F.softmax(x, dim=-1) if self.softmax else x


class Inception(nn.Module):
    def __init__(self, in_channels=192, f1=64, f3r=96, f3=128, f5r=16, f5=32, fp=32):
        super().__init__()
        self.branch_1x1 = nn.Conv2d(in_channels, f1, 1)
        self.branch_3x3_reduce = nn.Conv2d(in_channels, f3r, 1)
        self.branch_3x3 = nn.Conv2d(f3r, f3, 3, padding=1)
        self.branch_5x5_reduce = nn.Conv2d(in_channels, f5r, 1)
        self.branch_5x5 = nn.Conv2d(f5r, f5, 5, padding=2)
        self.branch_pool_proj = nn.Conv2d(in_channels, fp, 1)

    def forward(self, x):
        return torch.cat([
            F.relu(self.branch_1x1(x)),
            F.relu(self.branch_3x3(F.relu(self.branch_3x3_reduce(x)))),
            F.relu(self.branch_5x5(F.relu(self.branch_5x5_reduce(x)))),
            F.relu(self.branch_pool_proj(F.max_pool2d(x, 3, 1, 1))),
        ], dim=1)


class XceptionBlock(nn.Module):
    def __init__(self, in_channels=128, filters=256):
        super().__init__()
        self.main = nn.Sequential(
            nn.ReLU(), SeparableConv2d(in_channels, filters, 3, padding=1, bias=False), bn(filters),
            nn.ReLU(), SeparableConv2d(filters, filters, 3, padding=1, bias=False), bn(filters),
            SamePad(3, 2, -float("inf")), nn.MaxPool2d(3, 2))
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, filters, 1, 2, bias=False), bn(filters))

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


def mobilenet_blocks():
    modules = [nn.Conv2d(3, 32, 3, 2, padding=1, bias=False), bn(32), nn.ReLU6()]
    channels = 32
    for filters, stride in ((64, 1), (128, 2), (128, 1)):
        modules += [nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False), bn(channels),
                    nn.ReLU6(), nn.Conv2d(channels, filters, 1, bias=False), bn(filters), nn.ReLU6()]
        channels = filters
    return nn.Sequential(*modules)


def fcn_upsampler(classes=21):
    modules, channels = [], 3
    for filters in (32, 64, 128):
        modules += [SamePad(3, 2), nn.Conv2d(channels, filters, 3, 2), nn.ReLU()]
        channels = filters
    modules.append(nn.Conv2d(channels, classes, 1))
    channels = classes
    for filters in (64, 32):
        # Keras 'same' with kernel 4, stride 2 crops one cell each side: PyTorch padding=1
        modules += [nn.ConvTranspose2d(channels, filters, 4, 2, padding=1, bias=False), bn(filters), nn.ReLU()]
        channels = filters
    modules.append(nn.ConvTranspose2d(channels, classes, 4, 2, padding=1))
    return nn.Sequential(*modules)


TWINS = {
    "lenet5": lenet5,
    "mnist_convnet": mnist_convnet,
    "cats_vs_dogs_convnet": cats_vs_dogs_convnet,
    "vgg16": vgg16,
    "resnet34": ResNet34,
    "inception_module": Inception,
    "xception_block": XceptionBlock,
    "mobilenet_blocks": mobilenet_blocks,
    "fcn_upsampler": fcn_upsampler,
}


# ---------------------------------------------------------------------------------------------
# Weights and layouts
# ---------------------------------------------------------------------------------------------

_WEIGHTED = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Conv2DTranspose,
             layers.Dense, layers.BatchNormalization)


def _pycnn_weighted(model):
    """(layer, the shape fed to the Flatten before it, or None) for every weighted pycnn layer, in
    the order the model holds them (attributes and Sequential order, depth first)."""
    found, seen, flatten = [], set(), [None]

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, layers.Flatten):
            flatten[0] = layer.input_shape
        if isinstance(layer, _WEIGHTED):
            found.append((layer, flatten[0]))
            flatten[0] = None
        for sub in layer.layers:
            visit(sub)

    visit(model)
    return found


def _torch_weighted(module):
    found = []
    for child in module.children():
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d, SeparableConv2d)):
            found.append(child)
        else:
            found.extend(_torch_weighted(child))
    return found


def _copy(target, array, pair):
    if tuple(target.shape) != array.shape:
        raise ValueError(f"layers do not pair up: {pair}: shape {tuple(target.shape)} vs {array.shape}")
    target.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))


def _dense_kernel(kernel, flatten_input_shape, data_format):
    """Keras Dense kernel (in, units) -> torch (units, in). After a channels_last Flatten the
    rows are in (H, W, C) order and torch's flatten is (C, H, W): reorder them."""
    if flatten_input_shape is not None and len(flatten_input_shape) == 4 and data_format == "channels_last":
        _, h, w, c = flatten_input_shape
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return kernel.T


def _depthwise_kernel(kernel):
    kh, kw, c, m = kernel.shape
    return kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


@torch.no_grad()
def copy_weights(model, twin, data_format="channels_last"):
    """Give `twin` (a torch module from TWINS) the weights of the pycnn `model`, and put it in
    eval mode. Raises ValueError if the two do not pair up layer by layer."""
    ours, theirs = _pycnn_weighted(model), _torch_weighted(twin)
    if len(ours) != len(theirs):
        raise ValueError(f"pycnn has {len(ours)} weighted layers, the twin {len(theirs)}")
    for (layer, flatten_shape), module in zip(ours, theirs):
        weights = layer.get_weights()
        pair = f"{layer.name} ({type(layer).__name__}) vs {type(module).__name__}"
        if isinstance(layer, layers.BatchNormalization) and isinstance(module, nn.BatchNorm2d):
            gamma, beta, mean, variance = weights
            for target, array in ((module.weight, gamma), (module.bias, beta), (module.running_mean, mean),
                                  (module.running_var, variance)):
                _copy(target, array, pair)
            continue
        bias = weights[-1] if layer.use_bias else None
        if isinstance(layer, layers.SeparableConv2D) and isinstance(module, SeparableConv2d):
            _copy(module.depthwise.weight, _depthwise_kernel(weights[0]), pair)
            _copy(module.pointwise.weight, weights[1].transpose(3, 2, 0, 1), pair)
            target = module.pointwise
        elif isinstance(layer, layers.DepthwiseConv2D) and isinstance(module, nn.Conv2d):
            _copy(module.weight, _depthwise_kernel(weights[0]), pair)
            target = module
        elif isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)) and isinstance(
                module, nn.ConvTranspose2d if isinstance(layer, layers.Conv2DTranspose) else nn.Conv2d):
            # Conv2D (KH, KW, C, O) -> (O, C, KH, KW); Conv2DTranspose (KH, KW, O, C) -> (C, O, KH, KW)
            _copy(module.weight, weights[0].transpose(3, 2, 0, 1), pair)
            target = module
        elif isinstance(layer, layers.Dense) and isinstance(module, nn.Linear):
            _copy(module.weight, _dense_kernel(weights[0], flatten_shape, data_format), pair)
            target = module
        else:
            raise ValueError(f"layers do not pair up: {pair}")
        if (bias is None) != (target.bias is None):
            raise ValueError(f"bias mismatch: {pair}")
        if bias is not None:
            _copy(target.bias, bias, pair)
    return twin.eval()


def to_torch_input(x, data_format):
    """A pycnn input batch as the twin's NCHW tensor (a channels_last tensor view for NHWC)."""
    t = torch.from_numpy(x)
    return t.permute(0, 3, 1, 2) if data_format == "channels_last" and x.ndim == 4 else t


def from_torch_output(y, data_format):
    y = y.detach()
    if data_format == "channels_last" and y.ndim == 4:
        y = y.permute(0, 2, 3, 1)
    return y.contiguous().numpy()
