"""metallb_py.k8s.client without the kubernetes package: the configurations `connect` reads itself, and the
ones it leaves to the package's loader."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.k8s.client import LightApi, in_cluster_api, kubeconfig_api

PEM = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


def write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "n"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_token_and_a_ca_are_read_without_the_package(tmp_path: Path) -> None:
    ca = base64.b64encode(PEM).decode()
    path = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://127.0.0.1:6443/", "certificate-authority-data": ca},
        {"token": "secret"},
    )
    api = kubeconfig_api(path)
    assert isinstance(api, LightApi)
    assert api.configuration.host == "https://127.0.0.1:6443"
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer secret"
    pool = api.rest_client.pool_manager.connection_pool_kw
    assert (pool["ca_certs"], pool["ca_cert_data"]) == (None, PEM.decode())  # in memory, no file


def test_client_certificate_data_is_loaded_and_never_left_in_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cert, key = _self_signed(tmp_path, "me"), (tmp_path / "me.key").read_bytes()

    def config(cert: bytes, key: bytes) -> Path:
        data = {"client-certificate-data": base64.b64encode(cert).decode()}
        data["client-key-data"] = base64.b64encode(key).decode()
        return write_kubeconfig(tmp_path / "config", {"server": "https://h:1"}, data)

    api = kubeconfig_api(config(cert, key))
    assert api is not None
    pool = api.rest_client.pool_manager.connection_pool_kw
    assert isinstance(pool["ssl_context"], ssl.SSLContext)
    assert (pool["cert_file"], pool["key_file"]) == (None, None)
    assert list(temp.iterdir()) == []
    # The pair is really loaded: another certificate's key does not fit, and the package's loader decides.
    other = _self_signed(tmp_path, "other")
    assert kubeconfig_api(config(other, key)) is None
    assert list(temp.iterdir()) == []


def _self_signed(folder: Path, name: str) -> bytes:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-days",
            "1",
            "-keyout",
            str(folder / f"{name}.key"),
            "-out",
            str(folder / f"{name}.crt"),
        ],
        check=True,
        capture_output=True,
    )
    return (folder / f"{name}.crt").read_bytes()


def test_relative_files_are_the_kubeconfigs_folders(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://h:1", "certificate-authority": "ca.crt"},
        {"client-certificate": "me.crt", "client-key": "me.key"},
    )
    api = kubeconfig_api(path)
    assert api is not None
    pool = api.rest_client.pool_manager.connection_pool_kw
    assert (pool["ca_certs"], pool["cert_file"], pool["key_file"]) == tuple(
        str(tmp_path / name) for name in ("ca.crt", "me.crt", "me.key")
    )
    assert api.configuration.auth_settings() == {}


@pytest.mark.parametrize(
    ("cluster", "user"),
    [
        ({"server": "https://h:1"}, {"exec": {"command": "aws"}}),  # a plugin: the package runs it
        ({"server": "https://h:1"}, {"auth-provider": {"name": "oidc"}}),
        ({"server": "https://h:1", "proxy-url": "http://p:3128"}, {"token": "t"}),
        ({"certificate-authority-data": "eA=="}, {"token": "t"}),  # no server: the package says so
    ],
)
def test_anything_else_is_left_to_the_package(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]
) -> None:
    assert kubeconfig_api(write_kubeconfig(tmp_path / "config", cluster, user)) is None


def test_an_unreadable_kubeconfig_is_left_to_the_package(tmp_path: Path) -> None:
    assert kubeconfig_api(tmp_path / "missing") is None
    (tmp_path / "bad").write_text("contexts: [")
    assert kubeconfig_api(tmp_path / "bad") is None
    assert kubeconfig_api(write_kubeconfig(tmp_path / "c", {"server": "s"}, {}), context="other") is None


def test_in_cluster_the_rotated_token_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_cluster_api(tmp_path) is None, "not a pod"
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "ca.crt").write_bytes(PEM)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api = in_cluster_api(tmp_path)
    assert api is not None
    assert api.configuration.host == "https://[fd00::1]:443"
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer first"
    (tmp_path / "token").write_text("second\n")
    api.configuration._read_at -= 60.0  # a minute later
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer second"
