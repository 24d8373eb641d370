"""The cffi builder of hvtui._core: reads hvcore.h (the C API) and kvm_structs.cdef.

Used by setup.py (cffi_modules) and runnable by hand: `python core/build.py`.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["errors.c", "kvm.c", "vm.c", "vcpu.c", "uart16550.c", "i8042.c", "ring.c", "snapshot.c", "crc32c.c", "lazyram.c"]
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"]


def _read(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def cdef_text():
    """hvcore.h without the preprocessor lines cffi cannot parse, plus the kvm structs."""
    header = _read("hvcore.h")
    header = re.sub(r"^\s*#\s*(ifndef|endif|include|define HVCORE_H).*$", "", header, flags=re.M)
    return header + "\n" + _read("kvm_structs.cdef")


def _source_path(name):
    path = os.path.join(HERE, name)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") or __name__ == "__main__" else rel


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "hvtui._core",
    '#include "internal.h"\n',
    # setuptools wants sources relative to setup.py; a hand build (cwd elsewhere) takes absolute ones
    sources=[_source_path(s) for s in SOURCES],
    include_dirs=[HERE],
    extra_compile_args=CFLAGS,
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", "build", "cffi"), verbose=True)
