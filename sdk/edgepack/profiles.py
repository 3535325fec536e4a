"""Device profiles. For now the `host` profile, detected from this machine; the full schema
(budgets, energy, latency) lives in profiles/*.yaml."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field


@dataclass
class Profile:
    name: str
    arch: str
    cores: int
    isa: list[str] = field(default_factory=list)
    ram_bytes: int = 0


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512vnni", "asimd", "asimddp", "i8mm"]
                    return sorted(f for f in wanted if f in flags)
    except OSError:
        pass
    return []


def host_profile() -> Profile:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 0
    return Profile("host", platform.machine(), os.cpu_count() or 1, _cpu_flags(), ram)


def available_profiles() -> list[str]:
    return ["host"]


def load_profile(name: str) -> Profile:
    if name == "host":
        return host_profile()
    raise ValueError(f"unknown profile '{name}'; available: {', '.join(available_profiles())}")
