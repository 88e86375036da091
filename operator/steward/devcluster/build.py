"""Build the cluster's binaries from Go modules, cached outside the repository by version.

Each component lands in ``<cache>/<component>-<version>/`` with a ``.complete`` stamp written
last; a component whose stamp exists is not rebuilt, so a second run is a no-op. The cache is
``$STEWARD_CACHE_DIR`` or ``~/.cache/steward``. Nothing here downloads a prebuilt binary: Go
fetches source modules through its proxy and compiles them with ``CGO_ENABLED=0``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from steward.devcluster import versions

KUBERNETES_COMMANDS: Final = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)


class BuildError(RuntimeError):
    """A component could not be built; the message says which, and what Go printed."""


def cache_root() -> Path:
    """Where built binaries are kept: ``$STEWARD_CACHE_DIR`` or ``~/.cache/steward``."""
    configured = os.environ.get("STEWARD_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "steward"


@dataclass(frozen=True)
class Component:
    """One thing to build: its name, version, the binaries it yields, and how to build them."""

    name: str
    version: str
    binaries: tuple[str, ...]
    build: Callable[[Path, Path], None]  # (output dir, scratch dir) -> None

    def directory(self, root: Path) -> Path:
        return root / f"{self.name}-{self.version}"

    def is_built(self, root: Path) -> bool:
        return (self.directory(root) / ".complete").is_file()


def _go_env(scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CGO_ENABLED": "0",
        # A too-new requirement fails fast instead of downloading another toolchain.
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
        "GOWORK": "off",
        "GOBIN": str(scratch / "gobin"),
    }


def _go(args: list[str], cwd: Path, scratch: Path, what: str) -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            f"cannot build {what}: the Go toolchain is not installed (`go` is not on PATH). "
            "Install Go >= 1.24 and make sure the Go module proxy is reachable."
        )
    result = subprocess.run(
        [go, *args], cwd=cwd, env=_go_env(scratch), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        hint = ""
        signs = ("proxy", "dial tcp", "403", "no such host")
        if any(sign in tail.lower() for sign in signs):
            hint = "\n(the Go module proxy seems unreachable or refused a module: check GOPROXY)"
        raise BuildError(f"cannot build {what}: `go {' '.join(args)}` failed:\n{tail}{hint}")
    return result.stdout


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "steward-devcluster",
        "buildDate": "2000-01-01T00:00:00Z",  # fixed, so that builds are reproducible
    }
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    stamps = [f"-X {pkg}.{key}={value}" for pkg in packages for key, value in values.items()]
    return " ".join(["-s", "-w", *stamps])


def _build_kubernetes(out: Path, scratch: Path) -> None:
    # `go install k8s.io/kubernetes/cmd/...@v` refuses the module's local-path replaces; a
    # wrapper module that pins every staging module to its release builds the same commands.
    info = json.loads(
        _go(
            ["mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
            scratch,
            scratch,
            "kubernetes",
        )
    )
    upstream = Path(info["GoMod"]).read_text(encoding="utf-8")
    staging = sorted(
        {
            line.split()[0]
            for line in upstream.splitlines()
            if "=> ./staging/" in line and line.strip().startswith("k8s.io/")
        }
    )
    lines = [
        "module steward.local/k8sbuild",
        "",
        "go 1.24",
        "",
        f"require k8s.io/kubernetes {versions.KUBERNETES}",
        "",
    ]
    lines += [f"replace {m} => {m} {versions.KUBERNETES_STAGING}" for m in staging]
    (scratch / "go.mod").write_text("\n".join(lines) + "\n", encoding="utf-8")
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in KUBERNETES_COMMANDS)
    (scratch / "tools.go").write_text(
        f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n", encoding="utf-8"
    )
    _go(["mod", "tidy"], scratch, scratch, "kubernetes")
    for command in KUBERNETES_COMMANDS:
        _go(
            [
                "build",
                "-trimpath",
                "-ldflags",
                _version_ldflags(versions.KUBERNETES),
                "-o",
                str(out / command),
                f"k8s.io/kubernetes/cmd/{command}",
            ],
            scratch,
            scratch,
            command,
        )


def _wrapper_module(
    module: str, version: str, package: str, binary: str
) -> Callable[[Path, Path], None]:
    """Build ``package`` of ``module@version`` as ``binary`` through a throw-away module that
    requires it.

    Unlike ``go install pkg@version``, this never asks the proxy for the module's version list
    (which the proxy refuses for some modules, e.g. kube-state-metrics).
    """

    def build(out: Path, scratch: Path) -> None:
        (scratch / "go.mod").write_text(
            f"module steward.local/build\n\ngo 1.24\n\nrequire {module} {version}\n",
            encoding="utf-8",
        )
        (scratch / "tools.go").write_text(
            f'//go:build tools\n\npackage tools\n\nimport _ "{package}"\n', encoding="utf-8"
        )
        _go(["mod", "tidy"], scratch, scratch, module)
        _go(
            ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / binary), package],
            scratch,
            scratch,
            module,
        )

    return build


COMPONENTS: Final = (
    Component(
        "etcd",
        versions.ETCD,
        ("etcd",),
        _wrapper_module(
            "go.etcd.io/etcd/server/v3", versions.ETCD, "go.etcd.io/etcd/server/v3", "etcd"
        ),
    ),
    Component("kubernetes", versions.KUBERNETES, KUBERNETES_COMMANDS, _build_kubernetes),
    Component(
        "kwok",
        versions.KWOK,
        ("kwok",),
        _wrapper_module("sigs.k8s.io/kwok", versions.KWOK, "sigs.k8s.io/kwok/cmd/kwok", "kwok"),
    ),
    Component(
        "kube-state-metrics",
        versions.KUBE_STATE_METRICS,
        ("kube-state-metrics",),
        _wrapper_module(
            "k8s.io/kube-state-metrics/v2",
            versions.KUBE_STATE_METRICS,
            "k8s.io/kube-state-metrics/v2",
            "kube-state-metrics",
        ),
    ),
    Component(
        "helm",
        versions.HELM,
        ("helm",),
        _wrapper_module("helm.sh/helm/v3", versions.HELM, "helm.sh/helm/v3/cmd/helm", "helm"),
    ),
)


def binaries(root: Path | None = None) -> dict[str, Path]:
    """Path of every binary, by name, whether built yet or not."""
    base = root or cache_root()
    return {b: c.directory(base) / b for c in COMPONENTS for b in c.binaries}


def missing(root: Path | None = None) -> list[Component]:
    """Components not built yet."""
    base = root or cache_root()
    return [c for c in COMPONENTS if not c.is_built(base)]


def build_all(
    root: Path | None = None, report: Callable[[str], None] = print
) -> Mapping[str, float]:
    """Build every component not built yet; returns seconds spent per component built.

    Raises :class:`BuildError` naming the component that failed; components built before it
    stay cached.
    """
    base = root or cache_root()
    spent: dict[str, float] = {}
    for component in missing(base):
        report(f"building {component.name} {component.version} (cached in {base}) ...")
        started = time.monotonic()
        target = component.directory(base)
        scratch = base / "scratch" / f"{component.name}-{component.version}"
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "gobin").mkdir(parents=True)
        target.mkdir(parents=True, exist_ok=True)
        component.build(target, scratch)
        absent = [b for b in component.binaries if not (target / b).is_file()]
        if absent:
            raise BuildError(f"{component.name}: build produced no {', '.join(absent)}")
        (target / ".complete").write_text(component.version + "\n", encoding="utf-8")
        shutil.rmtree(scratch, ignore_errors=True)
        spent[component.name] = time.monotonic() - started
        report(f"built {component.name} in {spent[component.name]:.0f}s")
    return spent


def prometheus_binary() -> Path:
    """The Prometheus server installed from Debian's package; raises if it is missing."""
    found = shutil.which("prometheus")
    if found is None:
        raise BuildError(
            "Prometheus is not installed: run `apt-get install prometheus` "
            f"(Debian package {versions.PROMETHEUS_DEBIAN_PACKAGE!r}); its service is not used."
        )
    return Path(found)
