"""The compiled receive path; optional, so mflow installs (pure Python) without a compiler.

Checking it under AddressSanitizer and UBSan (with a Python not built with them):

    sanitize="-fsanitize=address,undefined"
    CFLAGS="$sanitize -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g" \\
    LDFLAGS="$sanitize" .venv/bin/python setup.py build_ext --inplace --force
    PYTHONMALLOC=malloc \\
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \\
    ASAN_OPTIONS=detect_leaks=0:log_path=/tmp/asan \\
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=/tmp/asan \\
    .venv/bin/python -m pytest tests/test_fastpath.py tests/test_fuzz.py -p no:cacheprovider
    ls /tmp/asan.*   # a report per process that found an error; none when clean
    .venv/bin/python setup.py build_ext --inplace --force   # the normal build again

``PYTHONMALLOC=malloc``: Python objects (a Frame and the small parts it holds inline) come
from malloc, so ASan sees them; from pymalloc's arenas an overrun goes unseen.
``log_path``: pytest captures stderr, and a process ASan stops loses what was captured.
``detect_leaks=0``: the interpreter keeps memory until exit, which LeakSanitizer would
report; leaks of the module are what ``test_successful_decodes_leak_nothing`` checks.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mflow._speedups", ["src/mflow/_speedups.c"], optional=True)])
