"""Device profiles and targets: every shipped file validates, and broken ones fail with errors that name
the file and the key."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgepack.profiles import (BYTES, ENERGY, OPS_RATE, TIME, ProfileError, available_profiles, available_targets,
                               data_root, devices_table, host_profile, isa_from_cpuinfo, load_profile, load_target,
                               parse_quantity)

REPO = Path(__file__).resolve().parents[1]
REQUIRED_DEVICES = {"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "pixel-8", "snapdragon-8-gen-3",
                    "iphone-15-pro", "stm32h743", "alif-ensemble-e7", "esp32-s3", "coral-dev-board",
                    "generic-arm64-linux", "host"}


# ---- shipped files -------------------------------------------------------------------------------------

def test_the_required_devices_are_shipped():
    assert REQUIRED_DEVICES <= set(available_profiles())
    assert data_root() == REPO


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_loads_and_every_figure_has_a_source(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.runtime in profile.target.runtimes
    assert set(profile.target.isa_baseline) <= set(profile.isa)
    for figure in ("memory.ram", "memory.storage", "memory.runtime_overhead", "compute.cores",
                   "compute.peak.fp32", "compute.peak.int8", "compute.bandwidth", "compute.op_overhead",
                   "energy.mac.fp32", "energy.memory_byte", "energy.idle_power", "latency.p50",
                   "accuracy.min_cosine"):
        assert profile.provenance(figure), f"{name}: {figure} has no source"
    c = profile.compute
    assert c.peak_ops["int8"] >= c.peak_ops["fp32"] > 0
    assert 0 < c.sustained_bandwidth <= c.bandwidth_bytes_per_s
    assert profile.energy.idle_power_w <= profile.energy.active_power_w
    assert set(profile.energy.mac_j) == set(c.peak_ops)


@pytest.mark.parametrize("name", available_targets())
def test_every_target_loads(name):
    target = load_target(name)
    assert target.name == name and target.runtimes


def test_profile_by_path(tmp_path):
    copy = tmp_path / "raspberry-pi-4.yaml"
    shutil.copy(REPO / "profiles" / "raspberry-pi-4.yaml", copy)
    assert load_profile(copy).compute.peak_ops == load_profile("raspberry-pi-4").compute.peak_ops
    assert load_profile(str(copy)).path == copy


def test_figures_are_parsed_into_si_units():
    pi4 = load_profile("raspberry-pi-4")
    assert pi4.memory.ram_bytes == 2 * 2 ** 30
    assert pi4.compute.peak_ops["fp32"] == 48e9
    assert pi4.compute.op_overhead_s == 20e-6
    assert pi4.energy.mac_j["int8"] == pytest.approx(193e-12)
    assert pi4.latency.p50_s == pytest.approx(0.1)
    assert pi4.accuracy.max_sqnr_loss_db == 3
    assert load_profile("stm32h743").memory.weights_in == "storage"


def test_host_profile_is_detected():
    host = host_profile()
    assert host.name == "host"
    assert host.compute.cores >= 1
    assert host.memory.ram_bytes > 0 and host.memory.storage_bytes > 0
    assert set(host.isa) <= set(host.target.isa_baseline + host.target.isa_optional)
    for figure in ("memory.ram", "compute.cores"):
        assert {s.kind for s in host.provenance(figure)} == {"detected"}
    for figure in ("compute.peak.fp32", "compute.bandwidth", "energy.mac.fp32", "energy.active_power"):
        assert {s.kind for s in host.provenance(figure)} == {"estimated"}
        assert "x" in host.provenance(figure)[0].text or "per" in host.provenance(figure)[0].text
    if host.compute.cache_bytes is not None:   # Linux with sysfs: the last-level cache, and its bandwidth
        assert {s.kind for s in host.provenance("compute.cache")} == {"detected"}
        assert {s.kind for s in host.provenance("compute.cache_bandwidth")} == {"estimated"}
        assert host.compute.cache_bandwidth_bytes_per_s > host.compute.sustained_bandwidth
    assert 0 < host.compute.run_overhead_s < host.compute.op_overhead_s * 100


def test_isa_from_cpuinfo():
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f avx512_vnni avx_vnni\n"
    assert isa_from_cpuinfo(x86) == ("avx", "avx-vnni", "avx2", "avx512-vnni", "avx512f", "fma", "sse2", "sse4.2")
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp i8mm\nCPU part\t: 0xd0b\n"
    assert isa_from_cpuinfo(arm) == ("dotprod", "fp16", "i8mm", "neon")
    assert isa_from_cpuinfo("") == ()


def test_devices_table_lists_every_profile():
    table = devices_table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["profile", "target", "runtime"]
    listed = {line.split()[0] for line in lines[2:]}
    assert listed == set(available_profiles())
    assert "raspberry-pi-4       linux-aarch64" in table


# ---- quantities ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,dimension,expected", [
    ("512 MiB", BYTES, 512 * 2 ** 20), ("2 GB", BYTES, 2_000_000_000), ("1.5 KiB", BYTES, 1536),
    ("13.5 GOPS", OPS_RATE, 13.5e9), ("4.6 pJ", ENERGY, 4.6e-12), ("10 us", TIME, 1e-5), ("2e3 ms", TIME, 2.0),
])
def test_parse_quantity(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("value,message", [
    ("512", "missing unit"), (512, "missing unit"), ("512MiB", "is not '<number> <unit>'"),
    ("512 mib", "unknown unit 'mib'"), ("512 W", "'W' is a unit of power"), ("-1 B", "is not '<number> <unit>'"),
    ("0.5 B", "not a whole number"), (True, "expected a quantity of bytes"), ("1,024 B", "is not"),
])
def test_parse_quantity_rejects(value, message):
    with pytest.raises(ValueError, match=message):
        parse_quantity(value, BYTES)


# ---- broken profiles ---------------------------------------------------------------------------------------

def _base() -> dict:
    return yaml.safe_load((REPO / "profiles" / "raspberry-pi-4.yaml").read_text())


def _write(tmp_path: Path, data: dict, name: str = "board") -> Path:
    data = {**data, "name": data.get("name", name)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _error(path: Path) -> str:
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert str(path) in message, "the error must name the file"
    return message


def test_a_valid_copy_loads(tmp_path):
    data = _base()
    data["name"] = "board"
    assert load_profile(_write(tmp_path, data)).name == "board"


def test_unknown_key(tmp_path):
    data = _base()
    data["memory"]["ramm"] = "1 GiB"
    message = _error(_write(tmp_path, data))
    assert "memory.ramm: unknown key" in message and "known here: ram, storage" in message


def test_unknown_section(tmp_path):
    data = _base()
    data["thermal"] = {"tdp": "5 W"}
    assert "thermal: unknown key" in _error(_write(tmp_path, data))


def test_missing_field(tmp_path):
    data = _base()
    del data["compute"]["bandwidth"]
    del data["latency"]
    message = _error(_write(tmp_path, data))
    assert "compute.bandwidth: missing required field" in message
    assert "latency: missing required field" in message


def test_missing_required_precision(tmp_path):
    data = _base()
    del data["compute"]["peak"]["int8"]
    assert "compute.peak.int8: missing required field" in _error(_write(tmp_path, data))


def test_unknown_precision(tmp_path):
    data = _base()
    data["compute"]["peak"]["int4"] = "1 TOPS"
    assert "compute.peak.int4: unknown precision" in _error(_write(tmp_path, data))


def test_wrong_unit(tmp_path):
    data = _base()
    data["memory"]["ram"] = "2 GB/s"
    data["energy"]["idle_power"] = "2.7 pJ"
    message = _error(_write(tmp_path, data))
    assert "memory.ram: '2 GB/s': 'GB/s' is a unit of bytes per second; this field is bytes" in message
    assert "energy.idle_power: '2.7 pJ': 'pJ' is a unit of energy; this field is power" in message


def test_missing_unit(tmp_path):
    data = _base()
    data["memory"]["ram"] = 2147483648
    assert "memory.ram: missing unit" in _error(_write(tmp_path, data))


def test_wrong_types(tmp_path):
    data = _base()
    data["compute"]["cores"] = "four"
    data["compute"]["ops_efficiency"] = 1.5
    data["target"]["isa"] = "neon"
    data["memory"]["weights_in"] = "flash"
    message = _error(_write(tmp_path, data))
    assert "compute.cores: expected a positive integer, got 'four'" in message
    assert "compute.ops_efficiency: expected a number in (0, 1]" in message
    assert "target.isa: expected a list of names" in message
    assert "memory.weights_in: expected one of ram, storage" in message


def test_unknown_target(tmp_path):
    data = _base()
    data["target"]["name"] = "linux-riscv64"
    message = _error(_write(tmp_path, data))
    assert "target.name: unknown target 'linux-riscv64'" in message and "linux-aarch64" in message


def test_runtime_and_isa_must_fit_the_target(tmp_path):
    data = _base()
    data["target"]["runtime"] = "coreml"
    data["target"]["isa"] = ["neon", "avx2"]
    message = _error(_write(tmp_path, data))
    assert "target.runtime: 'coreml' does not run on target linux-aarch64" in message
    assert "target.isa: avx2 not available on target linux-aarch64" in message


def test_unknown_isa_feature(tmp_path):
    data = _base()
    data["target"]["isa"] = ["neon", "neon-turbo"]
    assert "target.isa: unknown name 'neon-turbo'" in _error(_write(tmp_path, data))


def test_every_figure_needs_a_source(tmp_path):
    data = _base()
    data["sources"] = [s for s in data["sources"] if "compute.bandwidth" not in s["fields"]]
    data["sources"].append({"fields": ["compute.bandwith"], "estimated": "typo"})
    message = _error(_write(tmp_path, data))
    assert "compute.bandwidth: has no entry in sources" in message
    assert "'compute.bandwith' names no figure of the profile schema" in message


def test_a_source_entry_needs_exactly_one_kind(tmp_path):
    data = _base()
    data["sources"][0]["estimated"] = "also a guess"
    assert "sources[0]: needs exactly one of source, estimated, detected, chosen" in _error(_write(tmp_path, data))


def test_cross_field_checks(tmp_path):
    data = _base()
    data["latency"]["p95"] = "50 ms"
    data["energy"]["idle_power"] = "9 W"
    data["energy"]["mac"]["fp16"] = "100 pJ"
    message = _error(_write(tmp_path, data))
    assert "latency.p95: is below latency.p50" in message
    assert "energy.idle_power: exceeds energy.active_power" in message
    assert "energy.mac: gives precisions fp16, fp32, int8 but compute.peak gives fp32, int8" in message


def test_name_must_match_the_file(tmp_path):
    data = _base()
    data["name"] = "raspberry-pi-4"
    assert "name: 'raspberry-pi-4' does not match the file name 'board'" in _error(_write(tmp_path, data))


def test_duplicate_keys_are_rejected(tmp_path):
    path = tmp_path / "board.yaml"
    text = (REPO / "profiles" / "raspberry-pi-4.yaml").read_text().replace("name: raspberry-pi-4", "name: board")
    path.write_text(text.replace("  ram: 2 GiB\n", "  ram: 2 GiB\n  ram: 3 GiB\n"))
    assert "duplicate key 'ram'" in _error(path)


def test_detect_only_where_a_detector_exists(tmp_path):
    data = _base()
    data["latency"]["p50"] = "detect"
    assert "latency.p50: cannot be detected" in _error(_write(tmp_path, data))


def test_not_a_mapping(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("- just\n- a list\n")
    assert "expected a mapping of sections" in _error(path)


def test_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(ProfileError, match="unknown profile 'raspberry-pi-9'.*raspberry-pi-4"):
        load_profile("raspberry-pi-9")
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("/nonexistent/board.yaml")


# ---- installed layout -------------------------------------------------------------------------------------

def test_an_installed_copy_finds_its_packaged_data(tmp_path):
    """A wheel carries profiles/ and targets/ under edgepack/data/ (see docs/profiles.md); without them the
    error says what is missing."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "sdk" / "edgepack", site / "edgepack",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "data"))
    script = ("from edgepack.profiles import data_root, load_profile\n"
              "print(data_root()); print(load_profile('raspberry-pi-5').compute.cores)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    missing = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "device profile data not found" in missing.stderr

    data = site / "edgepack" / "data"
    shutil.copytree(REPO / "profiles", data / "profiles")
    shutil.copytree(REPO / "targets", data / "targets", ignore=shutil.ignore_patterns("*.cmake"))
    found = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(data), "4"]
