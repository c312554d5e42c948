"""Assemble the root filesystem of the pyci image, which the Dockerfile copies into `FROM scratch`.

    python3 rootfs.py STAGE ROOTFS

writes ROOTFS (the system), ROOTFS-tools (kind, kubectl, tilt, docker) and ROOTFS-python (the
packages and the pyci script): one image layer each.

Run by the base image's own Python (a Debian-based Python 3.11: python:3.11-slim-bookworm for
releases, the lab's debootstrap image offline). The result holds only what pyci runs:

- the interpreter and its standard library, less what a CI entrypoint never imports (tests, IDLE,
  tkinter, ensurepip...), byte-compiled without docstrings into sourceless .pyc files;
- STAGE, the bundled tools and Python packages the earlier stages laid out, the packages compiled the
  same way (pyci's own sources stay, so its tracebacks show lines);
- the shared libraries all of that links to, found with ldd, plus libgcc_s (glibc dlopens it when a
  thread exits, so ldd never lists it);
- busybox (from STAGE) for /bin/sh and the few utilities Tiltfiles' local() commands and a CircleCI
  primary container use (sh, tar, gzip), and the CA bundle, passwd and group files.

No package manager, no docs, no locales: that is what keeps the image within the bundled tools plus
80 MB. The layout is merged-/usr like the Debian it comes from (/bin -> usr/bin, /lib -> usr/lib).
"""

from __future__ import annotations

import compileall
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

# Standard-library parts pyci and its dependencies never import.
STDLIB_DROP = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3", "pydoc_data",
    "venv", "__phello__", "__hello__.py", "site-packages", "dist-packages", "EXTERNALLY-MANAGED",
})
# Extension modules for the terminal, old databases and NIS: they alone pull readline, ncurses,
# Berkeley DB, sqlite, libtirpc and Kerberos into the image.
DYNLOAD_DROP = re.compile(r"^(_test|_ctypes_test|_xxtestfuzz|xxlimited|xxsubtype|_tkinter|_curses|readline"
                          r"|nis|_dbm|_gdbm|_sqlite3|ossaudiodev|spwd)\b")
MERGED = ("bin", "sbin", "lib", "lib64")
# Kept as sources: pyci itself, so its tracebacks show the failing line.
KEEP_SOURCE = frozenset({"pyci"})
LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")


def merged(rel: str) -> str:
    """The merged-/usr path of a path relative to /: bin/sh -> usr/bin/sh."""
    head, _, rest = rel.partition("/")
    return f"usr/{head}/{rest}".rstrip("/") if head in MERGED else rel


def copy_tree(src: Path, root: Path, dest_rel: str, skip: frozenset[str] = frozenset()) -> None:
    """Copy src to root/dest_rel, symlinks as symlinks, leaving out top-level names in skip."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = Path(dirpath).relative_to(src)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
            filenames = [f for f in filenames if f not in skip]
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        target = root / merged(str(Path(dest_rel) / rel_dir))
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            s, d = Path(dirpath) / name, target / name
            if d.exists() or d.is_symlink():
                d.unlink()
            shutil.copy2(s, d, follow_symlinks=False)


def stage_into(stage: Path, root: Path) -> None:
    for top in sorted(stage.iterdir()):
        copy_tree(top, root, top.name)


def python_into(root: Path) -> Path:
    """The interpreter and standard library; returns the interpreter's path inside root."""
    exe = Path(os.path.realpath(sys.executable))
    dest = root / merged(str(exe.relative_to("/")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(exe, dest)
    for alias in ("python3", "python"):
        link = dest.parent / alias
        if not link.exists():
            link.symlink_to(exe.name)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    copy_tree(stdlib, root, str(stdlib.relative_to("/")), STDLIB_DROP)
    dynload = root / merged(str(Path(sysconfig.get_config_var("DESTSHARED")).relative_to("/")))
    for so in dynload.glob("*.so"):
        if DYNLOAD_DROP.match(so.name):
            so.unlink()
    for pkg in ("sqlite3", "curses", "dbm"):  # their extension modules are gone
        shutil.rmtree(root / merged(str(stdlib.relative_to("/"))) / pkg, ignore_errors=True)
    for config in (root / merged(str(stdlib.relative_to("/")))).glob("config-*"):
        shutil.rmtree(config)
    return dest


def compile_sourceless(tree: Path, keep: re.Pattern[str] | None = None) -> None:
    """Byte-compile tree into legacy .pyc files beside the sources, then drop the sources.

    optimize=2 leaves docstrings out: the kubernetes client is mostly docstrings. Sourceless .pyc
    files also spare every run compiling the client's thousand modules (the image has no writable
    bytecode cache)."""
    if not compileall.compile_dir(tree, quiet=2, legacy=True, optimize=2, workers=0, rx=keep):
        sys.exit(f"rootfs: byte-compiling {tree} failed")
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if d not in KEEP_SOURCE]
        for name in filenames:
            if name.endswith(".py") and (Path(dirpath) / (name + "c")).exists():
                os.unlink(Path(dirpath) / name)


def elf_files(root: Path) -> list[Path]:
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file() or not os.access(path, os.R_OK):
                continue
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def libraries_into(root: Path) -> list[str]:
    """Copy every shared library the ELF files under root need; returns what was added."""
    libdirs = sorted({str(p.parent) for p in root.glob("usr/lib/**/*.so*")})
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
    wanted: set[str] = set()
    for elf in elf_files(root):
        done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=env)
        if "not a dynamic executable" in done.stderr + done.stdout or "statically linked" in done.stdout:
            continue
        for line in done.stdout.splitlines():
            if "not found" in line:
                sys.exit(f"rootfs: {elf.relative_to(root)} needs a library nobody has: {line.strip()}")
            m = LDD_LINE.match(line)
            if m:
                wanted.add(m.group(2))
    # glibc dlopens libgcc_s to unwind a thread that exits; ldd cannot see that.
    wanted.update(str(p) for p in Path("/usr/lib").glob("*/libgcc_s.so.1"))
    added = []
    for lib in sorted(wanted):
        if lib.startswith(str(root)):
            continue
        dest = root / merged(str(Path(os.path.realpath(Path(lib).parent)).relative_to("/"))) / Path(lib).name
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dest)
            added.append(str(dest.relative_to(root)))
    return added


def busybox_into(root: Path) -> None:
    """Link busybox's applets (sh, tar, gzip, env...) where nothing else already is."""
    busybox = root / "usr/bin/busybox"
    if not busybox.exists():
        sys.exit("rootfs: busybox is missing from the stage (the busybox-static package)")
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True)
    for rel in applets.stdout.split():
        link = root / merged(rel)
        if not (link.exists() or link.is_symlink()):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/usr/bin/busybox")


def system_files_into(root: Path) -> None:
    for top in MERGED:
        (root / "usr" / top).mkdir(parents=True, exist_ok=True)
        (root / top).symlink_to(f"usr/{top}")
    etc = root / "etc"
    (etc / "ssl/certs").mkdir(parents=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", etc / "ssl/certs/ca-certificates.crt")
    # OpenSSL (Python's ssl module) looks in /usr/lib/ssl, which Debian points at /etc/ssl.
    if Path("/usr/lib/ssl").is_dir():
        copy_tree(Path("/usr/lib/ssl"), root, "usr/lib/ssl")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for name, mode in (("tmp", 0o1777), ("root", 0o700), ("workspace", 0o755)):
        (root / name).mkdir(exist_ok=True)
        (root / name).chmod(mode)


def ld_cache_into(root: Path) -> None:
    """The loader's cache, so libraries outside the built-in search path (python:slim's libpython in
    /usr/local/lib) are found as in the base."""
    (root / "etc/ld.so.conf.d").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/etc/ld.so.conf", root / "etc/ld.so.conf")
    for conf in Path("/etc/ld.so.conf.d").glob("*.conf"):
        shutil.copy2(conf, root / "etc/ld.so.conf.d" / conf.name)
    subprocess.run(["ldconfig", "-r", str(root)], check=True)


# The image's layers, each its own tree beside ROOTFS: the bundled tools (the bulk, changing only with
# versions.env), the Python packages (changing with every pyci release), and the rest (the system).
# Three layers also download in parallel.
TOOLS = ("usr/local/bin/kind", "usr/local/bin/kubectl", "usr/local/bin/tilt", "usr/local/bin/docker",
         "usr/local/bin/helm")


def split_layers(root: Path) -> dict[str, list[str]]:
    site = merged(str(Path(sysconfig.get_paths()["purelib"]).relative_to("/")))
    layers = {"tools": list(TOOLS), "python": [site, "usr/local/bin/pyci"]}
    for layer, paths in layers.items():
        for rel in paths:
            if not (root / rel).exists():  # helm, when the release build had no digest for it
                continue
            dest = root.parent / f"{root.name}-{layer}" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(root / rel, dest)
    return layers


def main(stage: Path, root: Path) -> None:
    root.mkdir(parents=True)
    system_files_into(root)
    python_into(root)
    stdlib = root / merged(str(Path(sysconfig.get_paths()["stdlib"]).relative_to("/")))
    compile_sourceless(stdlib)
    stage_into(stage, root)
    site = root / merged(str(Path(sysconfig.get_paths()["purelib"]).relative_to("/")))
    compile_sourceless(site, keep=re.compile(r"/pyci/"))
    compileall.compile_dir(site / "pyci", quiet=2)  # pyci keeps its sources and a normal cache
    busybox_into(root)
    added = libraries_into(root)
    for path in (root / "usr/share").glob("*"):
        if path.name in ("doc", "man", "info", "locale", "lintian", "bash-completion", "zsh", "fish"):
            shutil.rmtree(path)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & stat.S_IWOTH:
            path.chmod(path.stat().st_mode & ~stat.S_IWOTH)
    ld_cache_into(root)
    split_layers(root)
    print(f"rootfs: {len(added)} shared libraries: {' '.join(Path(a).name for a in added)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
