"""pycnn: fast, exact CPU convolution and pooling kernels for NumPy.

    import pycnn.ops as ops
    y = ops.conv2d(x, w, b, stride=1, padding="same", activation="relu")

`pycnn.ops` holds the kernels, `pycnn.reference` their pure-NumPy twins; `pycnn.layers` is a
Keras-style layer API over them and `pycnn.applications` builds classic architectures with it.
"""
__version__ = "0.1.0"

from . import _core

__all__ = [
    "__version__",
    "available_isas",
    "get_isa",
    "set_isa",
    "get_num_threads",
    "set_num_threads",
    "show_config",
]


def available_isas() -> list:
    """Instruction sets whose kernels this CPU can run, scalar first."""
    return list(_core.available_isas())


def get_isa() -> str:
    """The instruction set the kernels use now ('scalar', 'avx2' or 'avx512')."""
    return _core.get_isa()


def set_isa(isa: str) -> None:
    """Force an instruction set (for tests and comparisons). Also: environment PYCNN_ISA."""
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a str, got {type(isa).__name__}")
    _core.set_isa(isa)


def get_num_threads() -> int:
    """Threads one op may use (pycnn's setting, capped by OpenMP's / threadpoolctl's)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Threads one op may use, n >= 1 (also sets OpenMP's default for this thread); ops use at
    most 1024 threads."""
    from ._args import integer

    _core.set_num_threads(integer(n, "n"))


def show_config(print_out: bool = True) -> dict:
    """Version, CPU vendor and features, ISA in use, OpenMP runtime and threads, compiler and
    flags."""
    config = {
        "version": __version__,
        "cpu_vendor": _core.cpu_vendor(),
        "cpu_features": list(_core.cpu_features()),
        "isa": get_isa(),
        "available_isas": available_isas(),
        "openmp": _core.openmp_runtime(),
        "num_threads": get_num_threads(),
        "compiler": _core.compiler(),
        "flags": _core.compile_flags(),
    }
    if print_out:
        width = max(len(k) for k in config)
        for key, value in config.items():
            if isinstance(value, list):
                value = " ".join(value)
            print(f"{key:<{width}}  {value}")
    return config
