"""A real Linux kernel for the boot tests, prepared without root: the pinned Debian cloud
kernel, its `vmlinux` with the five patches that let it boot under KVM-PVM, and an
initramfs whose /init is one `ud2` (see ../shared/LINUX-ON-KVM-PVM.md for why).

Plain functions; `prepare()` does everything and returns the paths. When the pinned
package cannot be had (gone from the archive, no network, not a Debian host) or a tool is
missing, it raises `Unavailable` (a test skips); anything else that goes wrong (a patch
pattern that does not match once, a corrupt payload, a checksum that differs from the
pinned one) raises `KernelFixtureError` (a test errors).

Cache (default ~/.cache/hvtui/linux-kernel, or $HVTUI_LINUX_CACHE):
    linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb   the package, as apt-get fetched it
    vmlinuz, config                                        from the package's /boot (its
                                                           System.map is an 83-byte stub)
    vmlinux                                                the ELF inside vmlinuz (PVH note)
    vmlinux-patched                                        vmlinux with the five patches
    initramfs-ud2.cpio.gz                                  /dev, /proc, /dev/console, /init (ud2)
    NAME.sha256                                            beside each output, `sha256sum -c`
                                                           format: the output's digest and
                                                           the digests of what it was made from
An output is reused when its .sha256 file verifies; otherwise it is made again. Every
write goes to a temporary name and is renamed; a lock file serialises concurrent runs.
"""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "linux-image-6.1.0-56-cloud-amd64"
VERSION = "6.1.192-2"
KERNEL_RELEASE = "6.1.0-56-cloud-amd64"
DEB_NAME = f"{PACKAGE}_{VERSION}_amd64.deb"

# Digests of this exact build (checked on every make, so a different file is an error,
# not a silently different kernel).
SHA256 = {
    DEB_NAME: "e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee",
    "vmlinuz": "51349501a3d1ff83836437d2b365fd2d57f2feb8642d315e5181dec23d4c3275",
    "vmlinux": "b2b9d602a316b2dbd4870911aa07d40bf0b3f59c4d0147c7bc7e18c049a01fab",
    "vmlinux-patched": "070a773c074645022194899f1fc4b12b6637c2bde32b823f470f5fea85c1e262",
}

LZ4_LEGACY_MAGIC = bytes.fromhex("02214c18")

# The five patches of ../shared/linux-kernel/getkernel.sh:
# (name, pattern (hex), [(offset in pattern, expected byte, new byte), ...])
PATCHES = [
    ("int3_selftest int3->nop, je->jmp",
     "488d7c2404cc90909090837c24040174020f0b", [(5, 0xCC, 0x90), (15, 0x74, 0xEB)]),
    ("fpu__drop fwait->nop",
     "ebab9b6548c7054d14fe7e", [(2, 0x9B, 0x90)]),
    ("text_poke_bp_batch entry: xor eax,eax -> cli;nop",
     "65488b042528000000488944242031c0c6442412cc48", [(14, 0x31, 0xFA), (15, 0xC0, 0x90)]),
    ("text_poke_bp_batch exit: lock decl -> sti;decl",
     "85db7567f0ff0db83828027416", [(4, 0xF0, 0xFB)]),
    ("restore_fpregs_from_fpstate: AMD FXSAVE-leak fnclex;emms;fildl -> nop6",
     "4889fbe9a6400702dbe20f77db07e9ad400702",
     list(zip(range(8, 14), bytes.fromhex("dbe20f77db07"), bytes.fromhex("660f1f440000")))),
]

# What apt-get says when the package or version cannot be had (or the network is down).
_APT_UNAVAILABLE = (
    "unable to locate package", "can't select candidate version", "has no installation candidate",
    "was not found", "failed to fetch", "temporary failure resolving", "could not resolve",
    "could not connect", "connection failed", "network is unreachable", "unable to connect",
    "no candidate", "404  not found", "couldn't find any package",
)


class Unavailable(Exception):
    """The kernel cannot be had here: a test skips with this reason."""


class KernelFixtureError(RuntimeError):
    """The kernel or a derived file is not what it must be: a test errors."""


@dataclass(frozen=True)
class Kernel:
    cache: Path
    vmlinuz: Path          # the stock bzImage
    config: Path           # its kernel configuration
    vmlinux: Path          # the ELF from inside vmlinuz
    vmlinux_patched: Path  # what the PVH test boots
    initramfs_ud2: Path


def cache_dir() -> Path:
    env = os.environ.get("HVTUI_LINUX_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hvtui" / "linux-kernel"


# ---------------------------------------------------------------- checksummed cache files

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_fresh(path: Path, inputs: tuple[Path, ...] = ()) -> bool:
    """True when `path` and its sidecar exist and every digest in the sidecar (the file's
    own and those of the inputs it was made from) matches the files as they are now."""
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return False
    recorded = {}
    for line in side.read_text().splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    wanted = [path, *inputs]
    if set(recorded) != {p.name for p in wanted}:
        return False
    return all(p.is_file() and sha256_file(p) == recorded[p.name] for p in wanted)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _record(path: Path, inputs: tuple[Path, ...] = (), digest: str | None = None) -> None:
    """Write the sidecar of `path` (sha256sum format), after checking a pinned digest."""
    digest = digest or sha256_file(path)
    pinned = SHA256.get(path.name)
    if pinned is not None and digest != pinned:
        raise KernelFixtureError(f"{path}: sha256 {digest}, expected {pinned} (corrupt or a different build)")
    lines = [f"{digest}  {path.name}"] + [f"{sha256_file(p)}  {p.name}" for p in inputs]
    _write_atomic(_sidecar(path), ("\n".join(lines) + "\n").encode())


def _produce(path: Path, data: bytes, inputs: tuple[Path, ...] = ()) -> None:
    digest = hashlib.sha256(data).hexdigest()
    pinned = SHA256.get(path.name)
    if pinned is not None and digest != pinned:
        raise KernelFixtureError(f"{path.name}: made with sha256 {digest}, expected {pinned}")
    _write_atomic(path, data)
    _record(path, inputs, digest)


# ---------------------------------------------------------------- the package

def _need(tool: str, package: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise Unavailable(f"`{tool}` not found (install Debian's {package} package)")
    return exe


def fetch_deb(cache: Path) -> Path:
    """The pinned package, downloaded with `apt-get download` unless already cached."""
    deb = cache / DEB_NAME
    if is_fresh(deb):
        return deb
    if deb.is_file() and sha256_file(deb) == SHA256[DEB_NAME]:   # put there by hand
        _record(deb)
        return deb
    apt = _need("apt-get", "apt")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".apt-") as tmp:
        try:
            p = subprocess.run([apt, "download", f"{PACKAGE}={VERSION}"], cwd=tmp,
                               capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{PACKAGE}={VERSION}: apt-get download timed out (no network?)") from None
        got = Path(tmp) / DEB_NAME
        if p.returncode != 0 or not got.is_file():
            msg = (p.stderr + p.stdout).strip()
            if any(s in msg.lower() for s in _APT_UNAVAILABLE):
                last = msg.splitlines()[-1] if msg else ""
                raise Unavailable(f"pinned package gone from the archive or unreachable: "
                                  f"{PACKAGE}={VERSION} ({last})")
            raise KernelFixtureError(f"apt-get download {PACKAGE}={VERSION} failed "
                                     f"(exit {p.returncode}): {msg}")
        os.replace(got, deb)
    _record(deb)
    return deb


def extract_boot_files(cache: Path, deb: Path) -> tuple[Path, Path]:
    """vmlinuz and config from the package's /boot. (Debian's System.map there is a stub
    pointing to the -dbg package, so it is not kept.)"""
    vmlinuz, config = cache / "vmlinuz", cache / "config"
    if all(is_fresh(p, (deb,)) for p in (vmlinuz, config)):
        return vmlinuz, config
    dpkg_deb = _need("dpkg-deb", "dpkg")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".x-") as tmp:
        p = subprocess.run([dpkg_deb, "-x", str(deb), tmp], capture_output=True, text=True)
        if p.returncode != 0:
            raise KernelFixtureError(f"dpkg-deb -x {deb.name}: {p.stderr.strip()}")
        boot = Path(tmp) / "boot"
        for src, dst in ((f"vmlinuz-{KERNEL_RELEASE}", vmlinuz),
                         (f"config-{KERNEL_RELEASE}", config)):
            if not (boot / src).is_file():
                raise KernelFixtureError(f"{deb.name} has no /boot/{src}")
            _produce(dst, (boot / src).read_bytes(), (deb,))
    return vmlinuz, config


# ---------------------------------------------------------------- vmlinux from the bzImage

def bzimage_payload(bz: bytes) -> bytes:
    """The compressed kernel inside a bzImage (the boot protocol's payload_offset/length)."""
    if len(bz) < 0x250 or bz[0x202:0x206] != b"HdrS":
        raise KernelFixtureError("vmlinuz is not a bzImage (no HdrS)")
    if struct.unpack_from("<H", bz, 0x206)[0] < 0x208:
        raise KernelFixtureError("bzImage boot protocol older than 2.08: no payload fields")
    setup_sects = bz[0x1F1] or 4
    off, length = struct.unpack_from("<II", bz, 0x248)
    start = (setup_sects + 1) * 512 + off
    payload = bz[start:start + length]
    if len(payload) != length:
        raise KernelFixtureError("bzImage payload runs past the end of the file")
    return payload


def decompress_payload(payload: bytes) -> bytes:
    """The legacy-LZ4 payload (+ kbuild's 4-byte uncompressed size) to the vmlinux ELF."""
    if payload[:4] != LZ4_LEGACY_MAGIC:
        raise KernelFixtureError(f"payload magic {payload[:4].hex()}, expected legacy LZ4 {LZ4_LEGACY_MAGIC.hex()}")
    size = struct.unpack_from("<I", payload, len(payload) - 4)[0]
    lz4 = _need("lz4", "lz4")
    # lz4 may complain about the end of a legacy frame; the size check is what counts
    p = subprocess.run([lz4, "-dc"], input=payload[:-4], capture_output=True)
    out = p.stdout
    if len(out) != size or out[:4] != b"\x7fELF":
        raise KernelFixtureError(f"lz4 -dc gave {len(out)} bytes (expected an ELF of {size}): "
                                 f"{p.stderr.decode(errors='replace').strip()}")
    return out


def apply_patches(vmlinux: bytes, patches=PATCHES) -> bytes:
    """Each patch found by its exact byte pattern, which must occur exactly once."""
    d = bytearray(vmlinux)
    for name, pattern, edits in patches:
        pat = bytes.fromhex(pattern)
        n = d.count(pat)
        if n != 1:
            raise KernelFixtureError(f'patch "{name}": pattern found {n} times (need exactly 1)')
        i = d.find(pat)
        for o, old, new in edits:
            if d[i + o] != old:
                raise KernelFixtureError(f'patch "{name}": byte {o} is {d[i + o]:#04x}, expected {old:#04x}')
            d[i + o] = new
    return bytes(d)


def make_vmlinux(cache: Path, vmlinuz: Path) -> tuple[Path, Path]:
    vmlinux, patched = cache / "vmlinux", cache / "vmlinux-patched"
    if not is_fresh(vmlinux, (vmlinuz,)):
        _produce(vmlinux, decompress_payload(bzimage_payload(vmlinuz.read_bytes())), (vmlinuz,))
    if not is_fresh(patched, (vmlinux,)):
        _produce(patched, apply_patches(vmlinux.read_bytes()), (vmlinux,))
    return vmlinux, patched


# ---------------------------------------------------------------- the ud2 initramfs

ELF_BASE = 0x400000
_EHDR = struct.Struct("<4sBBBBB7xHHIQQQIHHHHHH")   # 64 bytes
_PHDR = struct.Struct("<IIQQQQQQ")                  # 56 bytes


def ud2_elf() -> bytes:
    """A static ELF64 x86-64 executable whose entry point is `ud2` (0f 0b): one PT_LOAD
    segment (R+X) mapping the whole 122-byte file at 0x400000."""
    code = b"\x0f\x0b"
    code_off = _EHDR.size + _PHDR.size
    size = code_off + len(code)
    ehdr = _EHDR.pack(b"\x7fELF", 2, 1, 1, 0, 0,        # ELFCLASS64, LSB, EV_CURRENT, SYSV, ABI 0
                      2, 62, 1,                          # ET_EXEC, EM_X86_64, EV_CURRENT
                      ELF_BASE + code_off,               # e_entry
                      _EHDR.size, 0, 0,                  # e_phoff, e_shoff, e_flags
                      _EHDR.size, _PHDR.size, 1,         # e_ehsize, e_phentsize, e_phnum
                      0, 0, 0)                           # e_shentsize, e_shnum, e_shstrndx
    phdr = _PHDR.pack(1, 5,                              # PT_LOAD, PF_R | PF_X
                      0, ELF_BASE, ELF_BASE,             # p_offset, p_vaddr, p_paddr
                      size, size, 0x1000)                # p_filesz, p_memsz, p_align
    return ehdr + phdr + code


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def cpio_newc(entries) -> bytes:
    """A cpio "newc" archive of (name, mode, data, (rdev major, rdev minor)) entries, all
    owned by root with mtime 0, ending with TRAILER!!!."""
    out = io.BytesIO()

    def put(ino, name, mode, nlink, data=b"", rdev=(0, 0)):
        bname = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(bname), 0)
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(hdr + bname + b"\0" * _pad4(len(hdr) + len(bname)))
        out.write(data + b"\0" * _pad4(len(data)))

    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        put(ino, name, mode, 2 if stat.S_ISDIR(mode) else 1, data, rdev)
    put(0, "TRAILER!!!", 0, 1)
    out.write(b"\0" * ((512 - out.tell() % 512) % 512))
    return out.getvalue()


def ud2_initramfs() -> bytes:
    """The INIT=ud2 initramfs of mkinitramfs.sh, gzip-compressed, byte-for-byte reproducible."""
    archive = cpio_newc([
        ("dev", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("init", stat.S_IFREG | 0o755, ud2_elf(), (0, 0)),
        ("proc", stat.S_IFDIR | 0o755, b"", (0, 0)),
    ])
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(archive)
    return buf.getvalue()


def parse_cpio_newc(data: bytes) -> list[dict]:
    """The entries of a newc archive up to TRAILER!!! (for the tests), checking alignment."""
    names = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor",
             "devminor", "rdevmajor", "rdevminor", "namesize", "check")
    entries, pos = [], 0
    while True:
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"bad newc magic at {pos}: {data[pos:pos + 6]!r}")
        e = {k: int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i, k in enumerate(names)}
        npos = pos + 110
        raw = data[npos:npos + e["namesize"]]
        if not raw.endswith(b"\0"):
            raise ValueError(f"name at {npos} is not NUL-terminated")
        e["name"] = raw[:-1].decode()
        dpos = npos + e["namesize"]
        dpos += _pad4(dpos)
        e["data"] = data[dpos:dpos + e["filesize"]]
        pos = dpos + e["filesize"]
        pos += _pad4(pos)
        if e["name"] == "TRAILER!!!":
            if any(data[pos:]):
                raise ValueError("bytes other than padding after the trailer")
            return entries
        entries.append(e)


def make_initramfs(cache: Path) -> Path:
    path = cache / "initramfs-ud2.cpio.gz"
    data = ud2_initramfs()
    if not (path.is_file() and path.read_bytes() == data and is_fresh(path)):
        _produce(path, data)
    return path


# ---------------------------------------------------------------- everything

def prepare(cache: Path | None = None) -> Kernel:
    """Fetch, extract, patch and build what the Linux tests boot (cached; see the module
    docstring). Raises Unavailable (skip) or KernelFixtureError (error)."""
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        deb = fetch_deb(cache)
        vmlinuz, config = extract_boot_files(cache, deb)
        vmlinux, patched = make_vmlinux(cache, vmlinuz)
        initramfs = make_initramfs(cache)
    return Kernel(cache, vmlinuz, config, vmlinux, patched, initramfs)


if __name__ == "__main__":   # python tests/linux_kernel.py: prepare the cache and say where
    import time
    t = time.monotonic()
    try:
        k = prepare()
    except Unavailable as e:
        raise SystemExit(f"unavailable: {e}")
    for f in ("vmlinuz", "config", "vmlinux", "vmlinux_patched", "initramfs_ud2"):
        print(f"{f:16} {getattr(k, f)}")
    print(f"ready in {time.monotonic() - t:.1f} s")
