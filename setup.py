"""The compiled receive path; optional, so mflow installs (pure Python) without a compiler."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mflow._speedups", ["src/mflow/_speedups.c"], optional=True)])
