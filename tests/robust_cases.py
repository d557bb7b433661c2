"""Shared small calls of every pycnn.ops op, for the test_robust_* files (not a test module)."""
from __future__ import annotations

import numpy as np

import pycnn.ops as ops


def make_calls(seed=0, n=2, size=9):
    """{name: (function, positional arrays, keywords)}: one small valid call per op, NCHW."""
    rng = np.random.default_rng(seed)
    r = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x = r(n, 4, size, size)
    return {
        "conv2d": (ops.conv2d, [x, r(6, 4, 3, 3), r(6)], dict(padding=1, activation="relu")),
        "conv2d_im2col": (ops.conv2d, [x, r(6, 2, 3, 3), r(6)], dict(stride=2, groups=2, algorithm="im2col")),
        "conv2d_nhwc": (ops.conv2d, [np.ascontiguousarray(x.transpose(0, 2, 3, 1)), r(3, 3, 4, 5), None],
                        dict(padding="same", data_format="NHWC")),
        "depthwise_conv2d": (ops.depthwise_conv2d, [x, r(8, 1, 3, 3), r(8)], dict(padding=1, activation="silu")),
        "depthwise_conv2d_nhwc": (ops.depthwise_conv2d, [np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                                                         r(3, 3, 4, 2), None], dict(stride=2, data_format="NHWC")),
        "separable_conv2d": (ops.separable_conv2d, [x, r(4, 1, 3, 3), r(5, 4, 1, 1), r(5)], dict(padding=1)),
        "conv_transpose2d": (ops.conv_transpose2d, [x, r(4, 3, 3, 3), r(3)], dict(stride=2, padding=1)),
        "max_pool2d": (ops.max_pool2d, [x, 3], dict(stride=2, padding=1)),
        "avg_pool2d": (ops.avg_pool2d, [x, 2], dict(ceil_mode=True)),
        "global_avg_pool2d": (ops.global_avg_pool2d, [x], {}),
        "global_max_pool2d": (ops.global_max_pool2d, [x], dict(keepdims=True)),
        "depth_max_pool2d": (ops.depth_max_pool2d, [x, 2], {}),
    }


def run(call):
    fn, args, kwargs = call
    return fn(*args, **kwargs)
