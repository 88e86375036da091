"""Building the local cluster: clear errors without Go or without the module proxy, and a
cache keyed by version."""

from pathlib import Path

import pytest

from steward.devcluster import build


def test_missing_go_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, so no `go`
    with pytest.raises(build.BuildError, match=r"Go toolchain is not installed"):
        build.build_all(tmp_path / "cache", report=lambda _line: None)


def test_unreachable_proxy_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty module cache and no proxy: the first component cannot fetch its source.
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "mod"))
    with pytest.raises(build.BuildError, match=r"cannot build .*\n(.|\n)*proxy") as raised:
        build.build_all(tmp_path / "cache", report=lambda _line: None)
    assert "GOPROXY" in str(raised.value)
    assert not any(c.is_built(tmp_path / "cache") for c in build.COMPONENTS)


def test_built_components_are_recognised_by_their_stamp(tmp_path: Path) -> None:
    etcd = next(c for c in build.COMPONENTS if c.name == "etcd")
    assert etcd in build.missing(tmp_path)
    directory = etcd.directory(tmp_path)
    directory.mkdir(parents=True)
    (directory / "etcd").write_text("")
    assert etcd in build.missing(tmp_path)  # a binary without the stamp is an interrupted build
    (directory / ".complete").write_text(etcd.version)
    assert etcd not in build.missing(tmp_path)
    assert directory.name == f"etcd-{etcd.version}"
    assert build.binaries(tmp_path)["etcd"] == directory / "etcd"
