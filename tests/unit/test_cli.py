"""The `metallb-py` command, through main(argv) and once through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metallb_py import demo
from metallb_py.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED = str(FIXTURES / "seed-configmap.yaml")
SEED_CRDS = str(FIXTURES / "seed-crds.yaml")
SERVICES = str(FIXTURES / "seed-services.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_prints_one_summary_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "config", "validate", SEED)
    assert (code, err) == (0, "")
    assert out == f"{SEED}: OK: 1 pool (3 addresses), 1 L2Advertisement\n"


def test_validate_reads_several_files_as_one_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "blue"},
                "spec": {"addresses": ["10.0.0.0/24"]},
            }
        )
    )
    ads = tmp_path / "ads.yaml"
    ads.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "metallb.io/v1beta1",
                "kind": "L2Advertisement",
                "metadata": {"name": "l2"},
                "spec": {"ipAddressPools": ["blue"]},
            }
        )
    )
    code, out, _ = run(capsys, "config", "validate", str(pools), str(ads))
    assert code == 0
    assert out.splitlines() == [
        f"{pools}: OK: 1 pool (256 addresses)",
        f"{ads}: OK: 0 pools (0 addresses), 1 L2Advertisement",
        "configuration OK: 1 pool (256 addresses), 1 L2Advertisement",
    ]
    # Alone, the advertisement refers to a pool that does not exist (yet): valid, as in MetalLB, with a
    # warning; --strict refuses it.
    warning = (
        f'warning: L2Advertisement "l2" ({ads}, document 1): spec.ipAddressPools[0]: '
        'unknown IPAddressPool "blue" (none is defined); skipped until it exists, as MetalLB does\n'
    )
    code, out, err = run(capsys, "config", "validate", str(ads))
    assert (code, out, err) == (0, f"{ads}: OK: 0 pools (0 addresses), 1 L2Advertisement\n", warning)
    code, out, err = run(capsys, "config", "validate", "--strict", str(ads))
    assert (code, out, err) == (1, "", warning + "error: 1 warning, refused by --strict\n")
    code, out, err = run(capsys, "config", "validate", "--strict", str(pools), str(ads))
    assert (code, err) == (0, "")


def test_validate_reports_every_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((FIXTURES / "seed-configmap.yaml").read_text().replace("layer2", "layer3"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    code, out, err = run(capsys, "config", "validate", str(bad), str(broken), str(tmp_path / "missing.yaml"))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 4
    assert lines[0] == (
        f'error: ConfigMap metallb-system/config ({bad}, document 1): address-pools[0] "nginx-ip-range": '
        'protocol: unknown protocol "layer3"; expected layer2 or bgp'
    )
    assert lines[1].startswith(f"error: {broken}: invalid YAML: line 2, column 1")
    assert lines[2] == f"error: {tmp_path / 'missing.yaml'}: No such file or directory"
    assert lines[3] == "3 errors"


def test_convert_to_stdout_and_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "config", "convert", SEED)
    assert (code, err) == (0, "")
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds == ["IPAddressPool", "L2Advertisement"]

    target = tmp_path / "crds.yaml"
    code, out, _ = run(capsys, "config", "convert", SEED, "-o", str(target))
    assert (code, out) == (0, "")
    code, out, _ = run(capsys, "config", "validate", str(target))
    assert code == 0 and "1 pool (3 addresses), 1 L2Advertisement" in out


def test_convert_refuses_crds(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "convert", SEED_CRDS)
    assert code == 1 and "is not a legacy MetalLB ConfigMap" in err


def test_plan_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "ipam", "plan", "--config", SEED, "--services", SERVICES)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "NAMESPACE   NAME           EXTERNAL-IP    POOL",
        "default     lb-hname-svc   192.168.1.11   nginx-ip-range",
        "default     lb-ip-svc      192.168.1.12   nginx-ip-range",
    ]


def test_plan_json_and_pending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    services = tmp_path / "services.yaml"
    services.write_text(
        (FIXTURES / "seed-services.yaml").read_text()
        + "---\n"
        + yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "gold",
                    "namespace": "shop",
                    "annotations": {"metallb.io/address-pool": "gold"},
                },
                "spec": {"type": "LoadBalancer"},
            }
        )
    )
    code, out, _ = run(
        capsys, "ipam", "plan", "--config", SEED_CRDS, "--services", str(services), "--output", "json"
    )
    assert code == 1  # a service stays pending
    rows = json.loads(out)
    assert [(r["namespace"], r["name"], r["ips"], r["pool"], r["error"]) for r in rows] == [
        ("default", "lb-hname-svc", ["192.168.1.11"], "nginx-ip-range", None),
        ("default", "lb-ip-svc", ["192.168.1.12"], "nginx-ip-range", None),
        ("shop", "gold", [], None, 'unknown pool "gold"'),
    ]
    code, out, _ = run(capsys, "ipam", "plan", "--config", SEED_CRDS, "--services", str(services))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL", "REASON"]
    assert lines[3].split(maxsplit=4) == ["shop", "gold", "<pending>", "<none>", 'unknown pool "gold"']


def test_plan_with_several_config_files_and_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "ipam", "plan", "--config", SEED, "--config", SEED_CRDS, "--services", SERVICES
    )
    assert code == 1 and 'duplicate IPAddressPool name "nginx-ip-range"' in err


def test_host_bits_are_a_warning_for_validate_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = Path(SEED).read_text()
    assert "192.168.1.11-192.168.1.13" in seed
    config = tmp_path / "cm.yaml"
    config.write_text(seed.replace("192.168.1.11-192.168.1.13", "192.168.1.11/30"))
    warning = (
        f"warning: ConfigMap metallb-system/config ({config}, document 1): "
        'address-pools[0] "nginx-ip-range": addresses[0]: "192.168.1.11/30" has host bits set; '
        "using 192.168.1.8/30 as MetalLB does\n"
    )
    code, out, err = run(capsys, "config", "validate", str(config))
    assert (code, out, err) == (0, f"{config}: OK: 1 pool (4 addresses), 1 L2Advertisement\n", warning)
    code, out, err = run(capsys, "ipam", "plan", "--config", str(config), "--services", SERVICES)
    assert (code, err) == (0, warning)
    assert "192.168.1.8" in out
    code, out, err = run(capsys, "config", "validate", "--strict", str(config))
    assert (code, out) == (1, "") and err.startswith(warning)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["config"],
        ["ipam"],
        ["config", "validate"],
        ["ipam", "plan", "--services", SERVICES],
        ["nope"],
        ["demo", "--mode", "ospf"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits by itself for malformed arguments
        code = int(exc.code or 0)
    assert code == 2
    assert "usage:" in capsys.readouterr().err


def test_demo_mode_is_layer2_unless_bgp_is_asked_for() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).mode == "layer2"
    # cli.py spells the choices itself (importing the demo would slow every command): every mode it plays.
    assert [parser.parse_args(["demo", "--mode", m]).mode for m in demo.MODES] == ["layer2", "bgp"]


def test_demo_in_bgp_mode_needs_root_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["demo", "--mode", "bgp"]) == 2
    assert "metallb-py demo needs root (network namespaces); run it with sudo" in capsys.readouterr().err


def test_the_bgp_demo_applies_the_example_configuration_which_validates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = REPO / "examples" / "seed" / "metallb-bgpconfig.yaml"
    # Embedded for installations without the examples directory: the same text.
    assert example.read_text() == demo.SEED_BGP_CONFIG
    code, out, err = run(capsys, "config", "validate", str(example))
    assert (code, err) == (0, "")
    assert out == f"{example}: OK: 1 pool (3 addresses), 1 BGPAdvertisement, 1 BGPPeer, 1 BFDProfile\n"


def test_installed_console_script() -> None:
    script = Path(sys.executable).parent / "metallb-py"
    result = subprocess.run(
        [str(script), "ipam", "plan", "--config", SEED, "--services", SERVICES, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [r["ips"] for r in json.loads(result.stdout)] == [["192.168.1.11"], ["192.168.1.12"]]
