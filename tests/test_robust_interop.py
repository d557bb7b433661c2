"""Interop: every op accepts CPU torch tensors, DLPack-only and buffer-only objects, and
non-contiguous / Fortran / negative-stride / read-only arrays with the same answers as
C-contiguous copies; results never alias inputs, and inputs are never modified."""
from __future__ import annotations

import array

import numpy as np
import pytest

from robust_cases import make_calls

CALLS = make_calls(seed=11)
NAMES = list(CALLS)


def _arrays(args):
    return [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]


def _expected(name):
    fn, args, kwargs = CALLS[name]
    return fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args], **kwargs)


class DLPackOnly:
    """Exposes only __dlpack__/__dlpack_device__ (no buffer protocol, no __array__)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def _non_contiguous(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous
    return view


def _fortran(a):
    f = np.asfortranarray(a)
    assert a.ndim < 2 or not f.flags.c_contiguous or a.size <= 1 or min(a.shape) == 1 or f.flags.f_contiguous
    return f


def _negative_stride(a):
    axis = max((i for i in range(a.ndim) if a.shape[i] > 1), default=0)
    flip = tuple(slice(None, None, -1) if i == axis else slice(None) for i in range(a.ndim))
    view = np.ascontiguousarray(a[flip])[flip]
    assert (a.shape[axis] == 1 or view.strides[axis] < 0) and np.array_equal(view, a)
    return view


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _torch(a):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(a.copy())


def _torch_channels_last(a):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(a.copy())
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def _torch_strided(a):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(_non_contiguous(a))


def _dlpack_only(a):
    return DLPackOnly(a.copy())


def _memoryview(a):
    return memoryview(a.copy())


WRAPPERS = {
    "non-contiguous": _non_contiguous, "fortran": _fortran, "negative-stride": _negative_stride,
    "read-only": _read_only, "torch": _torch, "torch-channels-last": _torch_channels_last,
    "torch-strided": _torch_strided, "dlpack-only": _dlpack_only, "memoryview": _memoryview,
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("name", NAMES)
def test_every_array_argument_in_any_form_gives_the_contiguous_answer(name, wrapper):
    fn, args, kwargs = CALLS[name]
    expected = _expected(name)
    wrap = WRAPPERS[wrapper]
    for i in _arrays(args):  # one argument at a time in the foreign form
        call_args = list(args)
        call_args[i] = wrap(args[i])
        result = fn(*call_args, **kwargs)
        assert isinstance(result, np.ndarray) and result.flags.c_contiguous and result.flags.writeable
        assert result.dtype == expected.dtype and result.shape == expected.shape
        np.testing.assert_array_equal(result, expected, err_msg=f"{name}: argument {i} as {wrapper}")


@pytest.mark.parametrize("name", ["global_avg_pool2d", "max_pool2d", "depth_max_pool2d"])
def test_array_array_buffer_input(name):
    """array.array is a 1-D buffer: reshaped by NumPy it is the input of an op."""
    fn, args, kwargs = CALLS[name]
    x = args[0]
    buf = array.array("f", x.ravel().tolist())
    view = np.frombuffer(buf, np.float32).reshape(x.shape)
    np.testing.assert_array_equal(fn(view, *args[1:], **kwargs), _expected(name))


def test_one_dimensional_buffer_is_rejected_naming_x():
    with pytest.raises(ValueError, match=r"\bx\b"):
        make_calls()["max_pool2d"][0](array.array("f", [1.0] * 16), 2)


@pytest.mark.parametrize("name", NAMES)
def test_results_never_alias_inputs_and_inputs_are_unchanged(name):
    fn, args, kwargs = CALLS[name]
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    for _ in range(2):  # the second call may hit a cached plan
        result = fn(*args, **kwargs)
        for a in args:
            if isinstance(a, np.ndarray):
                assert not np.shares_memory(result, a)
    first = fn(*args, **kwargs)
    second = fn(*args, **kwargs)
    assert not np.shares_memory(first, second)
    for a, c in zip(args, copies):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_torch_inputs_are_not_modified_and_results_are_numpy(name):
    torch = pytest.importorskip("torch")
    fn, args, kwargs = CALLS[name]
    targs = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    result = fn(*targs, **kwargs)
    assert type(result) is np.ndarray
    for t, a in zip(targs, args):
        if isinstance(a, np.ndarray):
            assert torch.equal(t, torch.from_numpy(a))
            assert not np.shares_memory(result, t.numpy())


def test_torch_tensor_requiring_grad_is_refused_with_type_error_naming_it():
    """NumPy cannot view a tensor that requires grad (torch refuses __array__ with RuntimeError);
    pycnn turns that into its TypeError naming the argument (it leaked a RuntimeError before)."""
    torch = pytest.importorskip("torch")
    fn, args, kwargs = CALLS["conv2d"]
    with pytest.raises(TypeError, match=r"\bweight\b.*grad"):
        fn(args[0], torch.from_numpy(args[1].copy()).requires_grad_(True), *args[2:], **kwargs)
    with pytest.raises(TypeError, match=r"\bx\b.*grad"):
        make_calls()["max_pool2d"][0](torch.ones(1, 1, 4, 4, requires_grad=True), 2)
    # detached, it works
    result = fn(torch.from_numpy(args[0].copy()).requires_grad_(True).detach(), *args[1:], **kwargs)
    np.testing.assert_array_equal(result, _expected("conv2d"))


@pytest.mark.parametrize("name", ["conv2d", "depthwise_conv2d", "max_pool2d", "global_avg_pool2d"])
def test_nested_lists_are_read_as_float64_like_numpy(name):
    fn, args, kwargs = CALLS[name]
    as_lists = [a.tolist() if isinstance(a, np.ndarray) else a for a in args]
    as_arrays = [np.asarray(a.tolist()) if isinstance(a, np.ndarray) else a for a in args]
    result = fn(*as_lists, **kwargs)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, fn(*as_arrays, **kwargs))


def test_torch_float64_and_int_tensors_follow_the_dtype_rules():
    torch = pytest.importorskip("torch")
    fn, args, kwargs = CALLS["max_pool2d"]
    x64 = torch.from_numpy(args[0].astype(np.float64))
    assert fn(x64, *args[1:], **kwargs).dtype == np.float64
    xi = torch.from_numpy((args[0] * 10).astype(np.int64))
    r = fn(xi, *args[1:], **kwargs)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, fn((args[0] * 10).astype(np.int64), *args[1:], **kwargs))


@pytest.mark.parametrize("name", ["conv2d", "max_pool2d", "conv_transpose2d"])
def test_unbatched_torch_and_view_inputs(name):
    fn, args, kwargs = CALLS[name]
    expected = _expected(name)[0]
    x0 = args[0][0]
    for x in (x0, _negative_stride(x0), _non_contiguous(x0)):
        np.testing.assert_array_equal(fn(x, *args[1:], **kwargs), expected)
