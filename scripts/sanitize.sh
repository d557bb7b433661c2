#!/usr/bin/env bash
# Build pycnn with AddressSanitizer + UndefinedBehaviorSanitizer and run the test suite under
# them. The Python interpreter is not instrumented, so the ASan runtime is preloaded.
#   scripts/sanitize.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/sanitize
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYCNN_SANITIZE=address,undefined \
  -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" -j2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r src/pycnn "$stage/pycnn"
cp "$build"/_core*.so "$stage/pycnn/"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# CPython's allocator and its deliberate leaks are not ours to report.
# allocator_may_return_null: an allocation ASan cannot serve is std::bad_alloc, as without ASan
# (tests check that absurd sizes fail cleanly); by default ASan would abort the process.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:symbolize=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONMALLOC=malloc
# An editable install's import hook would shadow the staged module and test the plain build.
PYTHONPATH="$stage" python3 -c "import sys, pycnn._core as c; sys.exit(0 if c.__file__.startswith('$stage') else
    'sanitize.sh: pycnn loads from ' + c.__file__ + ', not the sanitized build; use an environment without pycnn')"
PYTHONPATH="$stage" python3 -m pytest -q -p no:cacheprovider "$@"
