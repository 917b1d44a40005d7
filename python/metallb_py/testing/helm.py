"""Helm, built from the Go module proxy and cached, to lint and render the chart in deploy/helm.

Owns finding or building one `helm` binary per version and running it in isolation. No release binary is
downloaded: a small wrapper module (generated in the cache: `require helm.sh/helm/v4 VERSION`, with Helm's
command as its tool) lets Go fetch the source modules, checked against the checksum database, and compile
them, as tools/k8s/build.sh does for the control plane. The binary lands in
~/.cache/metallb-py/helm/VERSION/bin/helm (or under $METALLB_PY_CACHE), next to the Kubernetes binaries;
the first build takes a few minutes on two cores (Go's module and build caches make later ones quick), and a
cached one is used as it is. One build per version runs at a time: a second caller waits for the first.

`Helm` runs that binary with its configuration, cache and data directories in a temporary directory of its
own (no repositories, no plugins, nothing of the user's ~/.config/helm), and never talks to a cluster:
`template` renders offline and the caller applies what it returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml

from metallb_py.errors import MetalLBError
from metallb_py.testing.controlplane import default_cache_dir

__all__ = [
    "DEFAULT_HELM_VERSION",
    "HELM_MODULE",
    "Helm",
    "HelmCommandError",
    "HelmError",
    "HelmUnavailableError",
    "ensure_helm_binary",
]

# Helm 4 (the module helm.sh/helm/v4); its k8s.io modules are the control plane's (v0.37.2).
DEFAULT_HELM_VERSION = "v4.3.2"
HELM_MODULE = "helm.sh/helm/v4"

_STAMP = ".built"
# A line of progress per this many compiled packages (go build -v names each one).
_PROGRESS_EVERY = 100


class HelmError(MetalLBError):
    """Helm could not be built or run; the message says why and what to do."""


class HelmUnavailableError(HelmError):
    """Helm cannot be built here (no Go). Tests skip on this error unless METALLB_PY_REQUIRE_K8S=1."""


class HelmCommandError(HelmError):
    """A helm command exited non-zero; the message holds the command and helm's own words."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"helm {' '.join(argv)} exited with {returncode}: {stderr.strip() or '(no stderr)'}")


def _find_go() -> str | None:
    """$GO if set, else go on PATH, else Go's default install location (as tools/lib/build.sh)."""
    configured = os.environ.get("GO")
    if configured is not None:
        return shutil.which(configured)
    return shutil.which("go") or shutil.which("/usr/local/go/bin/go")


def ensure_helm_binary(
    version: str = DEFAULT_HELM_VERSION,
    cache_dir: Path | None = None,
    *,
    build: bool = True,
    progress: IO[str] | None = None,
) -> Path:
    """The `helm` of `version` (a tag of helm.sh/helm/v4, e.g. "v4.3.2") from the cache, built if missing.

    The build's progress goes to `progress` (default: this process's stderr). With build=False a missing
    binary raises HelmUnavailableError instead. Raises HelmUnavailableError when there is no Go, HelmError
    when the build fails (the message has the end of Go's output and the log's path).
    """
    if not version.startswith("v4.") or any(c.isspace() for c in version):
        raise HelmError(f"not a Helm 4 version: {version!r} (expected a tag of {HELM_MODULE}, e.g. v4.3.2)")
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    home = cache / "helm" / version
    binary = home / "bin" / "helm"
    if _cached(binary, version):
        return binary
    if not build:
        raise HelmUnavailableError(
            f"Helm {version} is not built in {binary.parent}; ensure_helm_binary(build=True) builds it "
            "(a few minutes with Go >= 1.26)"
        )
    go = _find_go()
    if go is None:
        raise HelmUnavailableError(
            f"Go is not installed, so Helm {version} cannot be built (needs Go >= 1.26 on PATH, in "
            "/usr/local/go, or named by $GO)"
        )
    out = progress if progress is not None else sys.stderr
    home.mkdir(parents=True, exist_ok=True)
    with _build_lock(home, out, version):
        if _cached(binary, version):  # another process built it while we waited
            return binary
        _build(go, version, home, out)
    return binary


def _cached(binary: Path, version: str) -> bool:
    stamp = binary.parent / _STAMP
    return os.access(binary, os.X_OK) and stamp.is_file() and stamp.read_text().strip() == f"helm={version}"


@contextlib.contextmanager
def _build_lock(home: Path, out: IO[str], version: str) -> Iterator[None]:
    with (home / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(out, f"another build of Helm {version} is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _say(out: IO[str], text: str) -> None:
    print(f">> metallb-py: {text}", file=out, flush=True)


def _build(go: str, version: str, home: Path, out: IO[str]) -> None:
    src = home / "src"
    src.mkdir(exist_ok=True)
    log = home / "build.log"
    log.write_text("")
    (src / "go.mod").write_text(
        "// Generated by metallb_py.testing.helm: builds Helm's command from the Go module proxy.\n"
        "module metallb-py/testing/helm\n\n"
        "go 1.26.0\n\n"
        f"tool {HELM_MODULE}/cmd/helm\n\n"
        f"require {HELM_MODULE} {version}\n"
    )
    (src / "go.sum").unlink(missing_ok=True)
    # -mod=mod: the wrapper's go.sum is written here, from the checksum database, not kept in the repository.
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -mod=mod".strip()}
    _say(out, f"building Helm {version} from {HELM_MODULE} (once; cached in {home.parent})")
    _say(out, f"full log: {log}")
    _say(out, "resolving and downloading source modules (go mod tidy, checked against the checksum database)")
    _run_go([go, "mod", "tidy"], src, env=env, log=log, out=out, version=version)
    partial = home / "bin.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {HELM_MODULE}/internal/version.version={version}",
            f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
        ]
    )
    _say(out, f"compiling {HELM_MODULE}/cmd/helm (a few minutes the first time on two cores)")
    _run_go(
        [
            go,
            "build",
            "-v",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(partial / "helm"),
            f"{HELM_MODULE}/cmd/helm",
        ],
        src,
        env=env,
        log=log,
        out=out,
        version=version,
    )
    bin_dir = home / "bin"
    bin_dir.mkdir(exist_ok=True)
    os.replace(partial / "helm", bin_dir / "helm")
    partial.rmdir()
    (bin_dir / _STAMP).write_text(f"helm={version}\n")
    _say(out, f"built {bin_dir / 'helm'}")


def _run_go(
    argv: list[str], cwd: Path, *, env: Mapping[str, str], log: Path, out: IO[str], version: str
) -> None:
    """Runs a go command, everything it says to `log`; package names (go build -v) are counted, every other
    line is passed on to `out`. A failure raises HelmError with the last lines."""
    tail: list[str] = []
    compiled = 0
    with (
        log.open("a") as log_file,
        subprocess.Popen(
            ["nice", *argv],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            tail = [*tail[-24:], line]
            if _is_package_line(line):
                compiled += 1
                if compiled % _PROGRESS_EVERY == 0:
                    out.write(f"   ... {compiled} packages compiled\n")
                    out.flush()
            else:
                out.write(line)
                out.flush()
    if proc.returncode != 0:
        raise HelmError(
            f"building Helm {version} failed ({' '.join(argv[1:3])} exited {proc.returncode}); the last "
            f"lines of {log}:\n{''.join(tail)}"
            "A 'requires go >= X' error wants a newer Go; a download error, the module proxy "
            f"({os.environ.get('GOPROXY', 'the default')}) reachable; rerunning is safe (nothing half-built "
            "is used)."
        )


def _is_package_line(line: str) -> bool:
    """go build -v prints each package it compiles as a bare import path."""
    text = line.strip()
    return bool(text) and " " not in text and ":" not in text


class Helm:
    """One helm binary, run with configuration, cache and data of its own in a temporary directory.

        with Helm(ensure_helm_binary()) as helm:
            objects = helm.template("deploy/helm/metallb-py", values={"mode": "bgp"})

    Every method raises HelmCommandError (with helm's stderr) when helm exits non-zero.
    """

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._home: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Self:
        self._home = tempfile.TemporaryDirectory(prefix="metallb-py-helm-")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def run(self, *args: str, input: str | None = None) -> str:
        """Runs `helm ARGS` and returns its standard output."""
        if self._home is None:
            raise HelmError("Helm is closed: use it as a context manager (with Helm(binary) as helm: ...)")
        home = Path(self._home.name)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            # No cluster: a render must not depend on whatever ~/.kube/config points at.
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }
        done = subprocess.run(
            [str(self.binary), *args], input=input, capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise HelmCommandError(args, done.returncode, done.stderr)
        return done.stdout

    def version(self) -> str:
        """The binary's version, e.g. "v4.3.2"."""
        return self.run("version", "--template={{.Version}}").strip()

    def lint(self, chart: Path, *, values: Mapping[str, Any] | None = None, strict: bool = True) -> str:
        """`helm lint` (with --strict: warnings fail too); returns helm's report."""
        return self.run("lint", str(chart), *(["--strict"] if strict else []), *self._values_args(values))

    def template(
        self,
        chart: Path,
        *,
        release: str = "metallb-py",
        namespace: str = "metallb-system",
        values: Mapping[str, Any] | None = None,
        include_crds: bool = False,
    ) -> list[dict[str, Any]]:
        """`helm template` of `chart` with `values` (nested, as in a values file): the rendered objects, in
        helm's order, without empty documents. CRDs (the chart's crds/) only with include_crds."""
        rendered = self.run(
            "template",
            release,
            str(chart),
            f"--namespace={namespace}",
            *(["--include-crds"] if include_crds else []),
            *self._values_args(values),
        )
        return [doc for doc in yaml.safe_load_all(rendered) if doc]

    def _values_args(self, values: Mapping[str, Any] | None) -> list[str]:
        if not values:
            return []
        assert self._home is not None
        # A values file (not --set), so lists, nulls and strings arrive exactly as given.
        fd, path = tempfile.mkstemp(suffix=".yaml", dir=self._home.name)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(dict(values), f)
        return [f"--values={path}"]
