"""setuptools glue that pyproject.toml cannot say: the cffi core and the guest images.

`pip install .` compiles core/ into hvtui._core (cffi_modules) and builds guests/ with
make into hvtui/images/*.elf inside the package.
"""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithGuests(build_py):
    """Build the guest programs from source next to the Python files."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hvtui", "images")
        else:
            out = os.path.abspath(os.path.join(self.build_lib, "hvtui", "images"))
        os.makedirs(out, exist_ok=True)
        subprocess.check_call(["make", "-s", "-C", "guests", f"OUT={out}"])


setup(
    cffi_modules=["core/build.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithGuests},
)
