"""Where the fused residual add + ReLU kernels were built (CMakeLists.txt at the repository root), and how to build
them: the shared library with the C ABI, one PTX file per GPU architecture, and the host arithmetic program.

The build folder is ``$RESNET_DEPLOY_KERNELS_DIR`` if set, else ``<repo>/build/kernels``; its
``kernels_manifest.json`` (written by CMake) says what is in it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

ENV_VAR = "RESNET_DEPLOY_KERNELS_DIR"
SOURCE_DIR = Path(__file__).resolve().parent.parent  # holds CMakeLists.txt in a source checkout
DEFAULT_BUILD_DIR = SOURCE_DIR / "build" / "kernels"
MANIFEST = "kernels_manifest.json"
MANIFEST_FORMAT = "resnet-deploy-kernels/1"

# Kernel entry names by dtype (see kernels/residual_add_relu.h) and elements per 16-byte vector.
KERNEL_NAMES: dict[str, str] = {
    "float32": "residual_add_relu_f32",
    "float16": "residual_add_relu_f16",
    "int8": "residual_add_relu_i8",
}
VECTOR_ELEMS: dict[str, int] = {"float32": 4, "float16": 8, "int8": 16}
BLOCK_SIZE = 256  # threads per block the kernels are compiled for (__launch_bounds__)
C_SYMBOLS = (
    "rd_abi_version",
    "rd_residual_add_relu_f32",
    "rd_residual_add_relu_f16",
    "rd_residual_add_relu_i8",
    "rd_error_string",
)


@dataclass(frozen=True)
class KernelArtifacts:
    """Files of one kernel build."""

    root: Path
    library: Path
    host_ref: Path
    ptx: dict[int, Path]  # arch (e.g. 87) -> PTX file
    nvcc_version: str
    dropped_archs: list[int] = field(default_factory=list)  # asked for but unsupported by that nvcc

    @property
    def archs(self) -> list[int]:
        return sorted(self.ptx)

    def ptx_for(self, compute_capability: int) -> tuple[int, Path]:
        """The PTX a GPU of ``compute_capability`` (e.g. 87 for sm_87) can JIT: the newest arch not above it."""
        usable = [a for a in self.ptx if a <= compute_capability]
        if not usable:
            raise UserError(
                f"no PTX for sm_{compute_capability} in {self.root} (built: {', '.join(map(str, self.archs))})"
            )
        arch = max(usable)
        return arch, self.ptx[arch]


def default_build_dir() -> Path:
    """``$RESNET_DEPLOY_KERNELS_DIR`` or ``<repo>/build/kernels``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_BUILD_DIR


def load_manifest(build_dir: str | Path) -> KernelArtifacts:
    """Read and validate ``kernels_manifest.json``; every file it names must exist inside ``build_dir``."""
    root = Path(build_dir).resolve()
    path = root / MANIFEST
    if not path.is_file():
        raise UserError(
            f"kernels are not built in {root} (no {MANIFEST}): run `cmake -S {SOURCE_DIR} -B {root} && "
            f"cmake --build {root}` or set {ENV_VAR}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        ptx = {int(arch): _inside(root, rel) for arch, rel in dict(data["ptx"]).items()}
        artifacts = KernelArtifacts(
            root=root,
            library=_inside(root, str(data["library"])),
            host_ref=_inside(root, str(data["host_ref"])),
            ptx=ptx,
            nvcc_version=str(data["nvcc_version"]),
            dropped_archs=[int(a) for a in data.get("dropped_archs", [])],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a valid kernel manifest ({exc})") from None
    missing = [p for p in (artifacts.library, *artifacts.ptx.values()) if not p.is_file()]
    if missing:
        raise UserError(f"kernel build in {root} is incomplete: {missing[0].name} is missing (rebuild it)")
    return artifacts


def _inside(root: Path, rel: str) -> Path:
    """``root/rel``, refusing names that escape the build folder (the manifest is a file on disk, not trusted)."""
    path = (root / rel).resolve()
    if root != path and root not in path.parents:
        raise ValueError(f"{rel!r} points outside the build folder")
    return path


def find_kernels(build_dir: str | Path | None = None) -> KernelArtifacts:
    """The kernel build in ``build_dir`` or :func:`default_build_dir`."""
    return load_manifest(build_dir if build_dir is not None else default_build_dir())


def build_kernels(
    build_dir: str | Path | None = None,
    source_dir: str | Path = SOURCE_DIR,
    archs: list[int] | None = None,
    jobs: int = 2,
    timeout_s: float = 1800,
) -> KernelArtifacts:
    """Configure and build with CMake + nvcc (no GPU needed). Raises UserError if either tool is missing."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise UserError("cmake not found on PATH: it is needed to build the kernels")
    if shutil.which("nvcc") is None and not os.environ.get("CUDACXX"):
        raise UserError("nvcc not found on PATH (or CUDACXX): it is needed to build the kernels")
    build = Path(build_dir if build_dir is not None else default_build_dir())
    configure = [cmake, "-S", str(source_dir), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    if archs:
        configure.append("-DRD_WANTED_ARCHS=" + ";".join(str(int(a)) for a in archs))
    for cmd in (configure, [cmake, "--build", str(build), "-j", str(jobs)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise UserError(f"kernel build failed ({' '.join(cmd[:2])} ...):\n" + "\n".join(tail))
    return load_manifest(build)
