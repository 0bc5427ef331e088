# setup.py only names the cffi build: cffi cannot be configured from pyproject.toml yet.
from setuptools import setup

setup(cffi_modules=["uringkit/_build_native.py:ffibuilder"])
