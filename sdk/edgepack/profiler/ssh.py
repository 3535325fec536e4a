"""The SSH runner: edgepack-bench on a remote Linux machine, through the system ssh and scp.

    runner = SshRunner("ssh://pi@raspberrypi.local", identity_file="~/.ssh/id_ed25519")
    measurement = runner.run("model.epk", runs=50)

Steps: `uname -m` (and the power sensors the machine exposes) over ssh; the edgepack-bench build for that
architecture (x86_64: the host build, aarch64: the linux-aarch64 cross build; --bench-target overrides);
`mktemp -d` on the remote; scp of the bench and the artifact there; the run, with the power sensors
sampled around it; the JSON back; the directory removed, whatever happened.

Authentication is key-based only: BatchMode=yes makes ssh fail instead of asking for a password or
confirming an unknown host key, so a profile run never hangs on a prompt. Pass the known-hosts file to
check the host key against (StrictHostKeyChecking=yes), or rely on the user's ~/.ssh/known_hosts.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import EdgepackError
from .energy import SensorSet, integrate, parse_remote_sensors, parse_samples, remote_discovery_script, \
    remote_sampler_script
from .native_build import BENCH_NAME, build_bench
from .runners import Measurement, Runner, check_run_arguments, measurement_from_bench

# uname -m -> the edgepack-bench build that runs there.
ARCH_TARGETS = {"x86_64": "host", "aarch64": "linux-aarch64", "arm64": "linux-aarch64"}
CONNECT_TIMEOUT_S = 10
_UNREACHABLE = ("connection refused", "no route to host", "connection timed out", "could not resolve hostname",
                "network is unreachable", "name or service not known", "operation timed out",
                "connection closed by", "connection reset by")
# What scp says when the server has no SFTP subsystem.
_NO_SFTP = ("connection closed", "subsystem request failed")
# The bench's own exit statuses (native/tools/edgepack_bench.cpp), and a shell's for a signal.
_BENCH_FAILED, _BENCH_USAGE, _SIGILL = 1, 2, 128 + 4


class SshError(EdgepackError):
    """The remote machine could not be reached, refused the key, or could not run the bench."""


@dataclass(frozen=True)
class SshTarget:
    user: str | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, spec: str) -> "SshTarget":
        """'ssh://user@host:port' (user and port optional; an IPv6 host in brackets)."""
        match = re.fullmatch(r"ssh://(?:([^@/\s]+)@)?(\[[0-9a-fA-F:.]+\]|[^:/@\s\[\]]+)(?::(\d+))?/?", spec)
        if match is None:
            raise ValueError(f"'{spec}' is not an SSH device: write ssh://user@host or ssh://user@host:port")
        user, host, port = match.groups()
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError(f"'{spec}': port {port} is outside 1..65535")
        return cls(user, host.strip("[]"), int(port) if port else None)

    @property
    def destination(self) -> str:
        """user@host for ssh."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def _bracketed(self) -> str:
        """The host as URLs and scp write it: an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}"

    def scp_path(self, path: str) -> str:
        return f"{self._bracketed}:{path}"

    def __str__(self) -> str:
        return f"ssh://{self._bracketed}" + (f":{self.port}" if self.port else "")


class SshRunner(Runner):
    kind = "ssh"

    def __init__(self, device: str, identity_file: str | Path | None = None, known_hosts: str | Path | None = None,
                 bench_target: str | None = None, extra_options: Sequence[str] = (),
                 timeout_s: float = 600.0) -> None:
        """identity_file: the private key (ssh -i); known_hosts: a known-hosts file to check the host key
        against; bench_target: the edgepack-bench build to copy (a targets/ folder, or "host"), instead
        of the one chosen by the remote architecture; extra_options: more `-o Key=Value` for ssh and scp."""
        self.target = SshTarget.parse(device)
        self.device = str(self.target)
        self.identity_file = Path(identity_file).expanduser() if identity_file else None
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else None
        for what, path in (("identity file", self.identity_file), ("known-hosts file", self.known_hosts)):
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"SSH {what} '{path}' does not exist")
        self.bench_target = bench_target
        self.extra_options = list(extra_options)
        self.timeout_s = timeout_s

    # ---- ssh and scp ---------------------------------------------------------------------------------------
    def _options(self) -> list[str]:
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "LogLevel=ERROR"]
        if self.identity_file is not None:
            options += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts is not None:
            options += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        for option in self.extra_options:
            options += ["-o", option]
        return options

    def _tool(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise SshError(f"'{name}' not found on PATH: install the Debian package 'openssh-client' "
                           "(apt-get install openssh-client)")
        return path

    def _ssh(self, script: str, what: str, check: bool = True) -> subprocess.CompletedProcess:
        port = ["-p", str(self.target.port)] if self.target.port else []
        # sh -c: the remote login shell may not be a POSIX shell (fish, csh)
        command = [self._tool("ssh"), *self._options(), *port, self.target.destination, "sh -c " + shlex.quote(script)]
        result = self._call(command, what)
        if result.returncode == 255:   # ssh's own failure; the remote command's status otherwise
            raise self._connection_error(result.stderr, what)
        if check and result.returncode != 0:
            raise SshError(f"{what} on {self.device} failed (exit {result.returncode}): {result.stderr.strip()}")
        return result

    def _scp(self, files: Sequence[Path], remote_dir: str) -> None:
        port = ["-P", str(self.target.port)] if self.target.port else []
        command = [self._tool("scp"), "-q", *self._options(), *port, *map(str, files), self.target.scp_path(remote_dir)]
        what = "copying the bench and the artifact"
        result = self._call(command, what)
        if result.returncode != 0 and any(s in result.stderr.lower() for s in _NO_SFTP):
            # scp from OpenSSH 9 speaks SFTP, which servers without an sftp subsystem (dropbear on many
            # boards) refuse; -O is the original scp protocol they do speak.
            result = self._call(command[:1] + ["-O"] + command[1:], what)
        if result.returncode != 0:
            lower = result.stderr.lower()
            if result.returncode == 255 or any(s in lower for s in ("permission denied", *_UNREACHABLE)):
                raise self._connection_error(result.stderr, what)
            raise SshError(f"{what} to {self.device}:{remote_dir} failed: {result.stderr.strip()}")

    def _call(self, command: list[str], what: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SshError(f"{what} on {self.device} did not finish within {self.timeout_s:.0f} s") from None

    def _connection_error(self, stderr: str, what: str) -> SshError:
        message = stderr.strip()
        lower = message.lower()
        if "host key verification failed" in lower or "remote host identification has changed" in lower:
            hint = (f"the host key of {self.target.host} is unknown or changed: add it to "
                    f"{self.known_hosts or '~/.ssh/known_hosts'} (ssh-keyscan"
                    f"{' -p ' + str(self.target.port) if self.target.port else ''} {self.target.host}) "
                    "or pass --ssh-known-hosts")
        elif "permission denied" in lower or "too many authentication failures" in lower:
            hint = (f"authentication failed for {self.target.destination}: key-based login is required "
                    f"(BatchMode); pass the private key with --ssh-identity"
                    + (f" (tried {self.identity_file})" if self.identity_file else "")
                    + " and make sure its public key is in the remote authorized_keys")
        elif any(s in lower for s in _UNREACHABLE):
            hint = f"cannot reach {self.target.host}" + (f" port {self.target.port}" if self.target.port else "") \
                + ": is the machine up and sshd listening there?"
        else:
            hint = "ssh failed"
        return SshError(f"{what}: {hint}\n  ssh said: {message or '(nothing)'}")

    # ---- the run ---------------------------------------------------------------------------------------------
    def probe(self) -> tuple[str, SensorSet | None]:
        """The remote architecture (uname -m) and its power sensors."""
        result = self._ssh("uname -m; " + remote_discovery_script(), "connecting (uname -m)")
        lines = result.stdout.splitlines()
        if not lines:
            raise SshError(f"uname -m on {self.device} printed nothing")
        return lines[0].strip(), parse_remote_sensors("\n".join(lines[1:]))

    def bench_for(self, arch: str) -> tuple[str, Path]:
        """(target, binary) of the edgepack-bench build for a remote architecture."""
        target = self.bench_target or ARCH_TARGETS.get(arch)
        if target is None:
            raise SshError(f"{self.device} is a '{arch}' machine; edgepack-bench is built for "
                           f"{', '.join(sorted(set(ARCH_TARGETS) - {'arm64'}))} only")
        return target, build_bench(target)

    def run(self, artifact: str | Path, runs: int = 50, warmup: int = 5, threads: int | None = None,
            per_op: bool = False, seed: int = 0, min_seconds: float = 0.0) -> Measurement:
        path = check_run_arguments(artifact, runs, warmup, threads, min_seconds)
        arch, sensors = self.probe()
        target, binary = self.bench_for(arch)
        remote_dir = self._ssh("mktemp -d -t edgepack-profile.XXXXXX", "creating a remote temporary directory"
                               ).stdout.strip()
        if not remote_dir.startswith("/"):
            raise SshError(f"mktemp -d on {self.device} printed '{remote_dir}', not a directory")
        try:
            self._scp([binary, path], remote_dir)
            report, samples_text = self._run_remote(remote_dir, path.name, target, runs, warmup, threads, per_op,
                                                    seed, min_seconds, sensors)
        finally:
            self._ssh(f"rm -rf {shlex.quote(remote_dir)}", "removing the remote temporary directory", check=False)
        energy = None
        if sensors is not None:
            energy = integrate(sensors, [parse_samples(samples_text, len(sensors.sensors))])
        measurement = measurement_from_bench(
            report, self.device, self.kind, emulated=False,
            memory_how="peak RSS of the edgepack-bench process on the remote machine", energy=energy)
        measurement.cpu["bench_target"] = target
        return measurement

    def _run_remote(self, remote_dir: str, artifact_name: str, target: str, runs: int, warmup: int,
                    threads: int | None, per_op: bool, seed: int, min_seconds: float,
                    sensors: SensorSet | None) -> tuple[dict[str, Any], str]:
        d = shlex.quote(remote_dir)
        flags = ["--runs", str(runs), "--warmup", str(warmup), "--seed", str(seed)]
        if threads is not None:
            flags += ["--threads", str(threads)]
        if min_seconds:
            flags += ["--min-seconds", repr(min_seconds)]
        if per_op:
            flags.append("--per-op")
        bench = (f"chmod +x {d}/{BENCH_NAME} && {d}/{BENCH_NAME} {d}/{shlex.quote(artifact_name)} "
                 f"{' '.join(flags)} > {d}/report.json 2> {d}/stderr.txt")
        if sensors is not None:
            start, stop = remote_sampler_script(sensors)
            bench = f"ENERGY_LOG={d}/energy.log; {start}; {bench}; status=$?; {stop}; (exit $status)"
        # The report and the samples come back on stdout, split by a marker line; the bench's status is
        # the script's, so a failure keeps its exit code and its stderr.
        marker = "----edgepack-energy----"
        script = (f"{bench}; status=$?; if [ $status -ne 0 ]; then cat {d}/stderr.txt >&2; exit $status; fi; "
                  f"cat {d}/report.json; echo {marker}; cat {d}/energy.log 2>/dev/null; true")
        result = self._ssh(script, "running edgepack-bench", check=False)
        if result.returncode != 0:
            raise self._bench_error(result, target)
        text, _, samples = result.stdout.partition(marker)
        try:
            return json.loads(text), samples
        except json.JSONDecodeError as error:
            raise SshError(f"edgepack-bench on {self.device} printed invalid JSON ({error}): {text[:300]!r}") from None

    def _bench_error(self, result: subprocess.CompletedProcess, target: str) -> SshError:
        stderr = result.stderr.strip()
        if result.returncode == _SIGILL:
            return SshError(f"edgepack-bench ({target} build) died of an illegal instruction on {self.device}: the "
                            "remote CPU lacks an instruction the build uses (the host build is -march=native); "
                            "pass --bench-target linux-x86_64 for a portable x86-64 build")
        if result.returncode in (_BENCH_FAILED, _BENCH_USAGE):
            return SshError(f"edgepack-bench on {self.device} failed (exit {result.returncode}): {stderr}")
        return SshError(f"running edgepack-bench on {self.device} failed (exit {result.returncode}): "
                        f"{stderr or 'no message'}")
