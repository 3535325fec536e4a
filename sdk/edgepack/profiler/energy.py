"""Energy: measured from the device's power sensors when it has them, otherwise estimated from the profile.

Sensors (Linux sysfs), in order of preference:
  RAPL     /sys/class/powercap/<zone>/energy_uj        cumulative microjoules of a CPU package (x86), or
                                                        of the whole platform ("psys" zone) where present
  hwmon    /sys/class/hwmon/hwmonN/energyM_input       cumulative microjoules (e.g. some board monitors)
  hwmon    /sys/class/hwmon/hwmonN/powerM_input        instantaneous microwatts (INA2xx/INA3221 rails ...),
           (or powerM_average)                          sampled and integrated over time
The first group found is used. RAPL sees the whole package: every process on it counts, so a busy machine
inflates the figure (the report says so).

Readings are samples (time, one value per sensor); the same integration serves a local sampler thread and
the log a remote shell loop writes over SSH. A measurement may be split into segments (the local runner
pauses it during cool-downs) so that idle pauses are not charged to the model.
"""
from __future__ import annotations

import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SYSFS = Path("/sys")
SAMPLE_INTERVAL_S = 0.05   # power sensors update every few ms to 100 ms; counters need only the ends

# Sensor kinds and how reports name them.
RAPL, HWMON_ENERGY, HWMON_POWER = "rapl", "hwmon-energy", "hwmon-power"
SOURCE_LABELS = {RAPL: "measured: RAPL", HWMON_ENERGY: "measured: hwmon energy counter",
                 HWMON_POWER: "measured: hwmon power sensor"}
ESTIMATED_LABEL = "estimated: profile energy model"


@dataclass(frozen=True)
class Sensor:
    kind: str                 # RAPL | HWMON_ENERGY | HWMON_POWER
    path: str                 # the file holding the counter (uJ) or the power (uW)
    name: str                 # the zone or chip name, for the report
    wrap_uj: int | None = None  # a counter's range (RAPL max_energy_range_uj): it restarts from 0 past it

    @property
    def is_counter(self) -> bool:
        return self.kind in (RAPL, HWMON_ENERGY)


@dataclass(frozen=True)
class SensorSet:
    """The sensors an energy measurement reads, all of one kind (their values add up)."""
    kind: str
    sensors: tuple[Sensor, ...]

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.kind]


@dataclass(frozen=True)
class EnergyReading:
    """Energy integrated over the measured segments."""
    source: str               # "measured: RAPL", ...
    sensors: tuple[str, ...]
    joules: float
    seconds: float            # time covered by the segments

    @property
    def power_w(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0


# ---- discovery ----------------------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


_TOP_ZONE = re.compile(r"^[a-z-]+:\d+$")   # intel-rapl:0 is a package; intel-rapl:0:0 its core subzone


def discover_sensors(sysfs: str | Path = SYSFS) -> tuple[SensorSet | None, list[str]]:
    """The preferred readable sensors under a sysfs tree (default /sys), and notes on what was skipped
    (e.g. RAPL present but readable by root only)."""
    sysfs = Path(sysfs)
    notes: list[str] = []
    rapl = []
    powercap = sysfs / "class" / "powercap"
    zones = sorted(powercap.iterdir()) if powercap.is_dir() else []
    for zone in zones:
        # intel-rapl-mmio:N mirrors intel-rapl:N through MMIO on some CPUs: counting both would double it.
        if not _TOP_ZONE.match(zone.name) or "mmio" in zone.name or not (zone / "energy_uj").exists():
            continue
        name = _read(zone / "name") or zone.name
        if _read(zone / "energy_uj") is None:
            notes.append(f"RAPL zone {zone.name} ({name}) is not readable: since Linux 5.10 energy_uj is readable "
                         "by root only (chmod it, or run as root)")
            continue
        wrap = _read(zone / "max_energy_range_uj")
        rapl.append(Sensor(RAPL, str(zone / "energy_uj"), name, int(wrap) if wrap and wrap.isdigit() else None))
    energy, power = [], []
    hwmon = sysfs / "class" / "hwmon"
    for chip in sorted(hwmon.iterdir()) if hwmon.is_dir() else []:
        chip_name = _read(chip / "name") or chip.name
        for path in sorted(chip.glob("energy*_input")):
            if _read(path) is not None:
                energy.append(Sensor(HWMON_ENERGY, str(path), f"{chip_name} {path.name}"))
        for path in sorted([*chip.glob("power*_input"), *chip.glob("power*_average")]):
            if _read(path) is not None:
                power.append(Sensor(HWMON_POWER, str(path), f"{chip_name} {path.name}"))
    return _choose(rapl, energy, power), notes


def _choose(rapl: list[Sensor], energy: list[Sensor], power: list[Sensor]) -> SensorSet | None:
    """RAPL first (the platform zone, psys, covers the packages and more; else every package once),
    then hwmon energy counters, then hwmon power sensors."""
    chosen = [s for s in rapl if s.name == "psys"] or [s for s in rapl if s.name.startswith("package")] or rapl
    for kind, sensors in ((RAPL, chosen), (HWMON_ENERGY, energy), (HWMON_POWER, power)):
        if sensors:
            return SensorSet(kind, tuple(sensors))
    return None


def remote_discovery_script(sysfs: str = "/sys") -> str:
    """A POSIX sh script printing the readable sensor candidates of the machine it runs on, one a line:
        powercap <zone dir> <max_energy_range_uj or -> <name...>
        hwmon <file> <chip name...>"""
    root = shlex.quote(sysfs)
    return f"""
for z in {root}/class/powercap/*; do
  [ -r "$z/energy_uj" ] && cat "$z/energy_uj" >/dev/null 2>&1 &&
    echo "powercap $z $(cat "$z/max_energy_range_uj" 2>/dev/null || echo -) $(cat "$z/name" 2>/dev/null)"
done
for f in {root}/class/hwmon/hwmon*/energy*_input {root}/class/hwmon/hwmon*/power*_input \\
         {root}/class/hwmon/hwmon*/power*_average; do
  [ -r "$f" ] && cat "$f" >/dev/null 2>&1 && echo "hwmon $f $(cat "${{f%/*}}/name" 2>/dev/null)"
done
true
"""


def parse_remote_sensors(text: str) -> SensorSet | None:
    """Choose sensors from remote_discovery_script's output with the same preferences as discover_sensors."""
    rapl, energy, power = [], [], []
    for line in text.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) >= 3 and parts[0] == "powercap":
            zone = Path(parts[1])
            if not _TOP_ZONE.match(zone.name) or "mmio" in zone.name:
                continue
            wrap = int(parts[2]) if parts[2].isdigit() else None
            rapl.append(Sensor(RAPL, str(zone / "energy_uj"), parts[3] if len(parts) > 3 else zone.name, wrap))
        elif len(parts) >= 2 and parts[0] == "hwmon":
            path = Path(parts[1])
            name = f"{' '.join(parts[2:]) or path.parent.name} {path.name}"
            (energy if path.name.startswith("energy") else power).append(
                Sensor(HWMON_ENERGY if path.name.startswith("energy") else HWMON_POWER, str(path), name))
    return _choose(rapl, energy, power)


def remote_sampler_script(sensors: SensorSet, interval_s: float = 0.1) -> tuple[str, str]:
    """(start, stop) POSIX sh fragments that log samples "<uptime seconds> <value>..." to $ENERGY_LOG
    while the command between them runs; /proc/uptime is the clock (10 ms resolution) since busybox
    date has no sub-second format."""
    files = " ".join(shlex.quote(s.path) for s in sensors.sensors)
    sample = (f'{{ read up _ < /proc/uptime; printf "%s" "$up"; '
              f'for f in {files}; do printf " %s" "$(cat "$f")"; done; echo; }}')
    start = f'( while :; do {sample}; sleep {interval_s}; done ) >> "$ENERGY_LOG" 2>/dev/null & SAMPLER=$!'
    stop = f'kill $SAMPLER 2>/dev/null; wait $SAMPLER 2>/dev/null; {sample} >> "$ENERGY_LOG"'
    return start, stop


def parse_samples(text: str, count: int) -> list[tuple[float, list[float]]]:
    """Samples from a sampler log; lines cut short by the kill are dropped."""
    samples = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != count + 1:
            continue
        try:
            samples.append((float(parts[0]), [float(v) for v in parts[1:]]))
        except ValueError:
            continue
    samples.sort(key=lambda s: s[0])
    return samples


# ---- integration ----------------------------------------------------------------------------------------

def integrate(sensors: SensorSet, segments: Sequence[Sequence[tuple[float, list[float]]]]) -> EnergyReading:
    """Joules and seconds over segments of samples (time in seconds, one value per sensor): counters
    (uJ) by their increase, restarting counters by their wrap range; power sensors (uW) by the trapezoid rule."""
    joules = seconds = 0.0
    for samples in segments:
        if len(samples) < 2:
            continue
        seconds += samples[-1][0] - samples[0][0]
        for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
            for i, sensor in enumerate(sensors.sensors):
                if sensor.is_counter:
                    delta = v1[i] - v0[i]
                    if delta < 0 and sensor.wrap_uj:
                        delta += sensor.wrap_uj
                    joules += max(delta, 0.0) * 1e-6
                else:
                    joules += (v0[i] + v1[i]) / 2 * 1e-6 * (t1 - t0)
    return EnergyReading(sensors.label, tuple(s.name for s in sensors.sensors), joules, seconds)


class EnergyMeter:
    """Samples local sensors while a measurement runs: at start, stop, pause and resume, and every
    `interval_s` in between from a background thread (power sensors need the samples in between;
    counters only the ends, but sampling also catches a counter that wraps more than once)."""

    def __init__(self, sensors: SensorSet, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.sensors = sensors
        self.interval_s = interval_s
        self._segments: list[list[tuple[float, list[float]]]] = []
        self._active = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> tuple[float, list[float]]:
        values = []
        for sensor in self.sensors.sensors:
            text = _read(Path(sensor.path))
            if text is None:
                raise OSError(f"energy sensor {sensor.path} became unreadable")
            values.append(float(text))
        return time.perf_counter(), values

    def _record(self) -> None:
        sample = self._sample()
        self._segments[-1].append(sample)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                if self._active:
                    # A failed read in between is skipped: the boundary samples, taken by the caller, carry
                    # the result, and a sensor that really stopped working fails those.
                    try:
                        self._record()
                    except (OSError, ValueError):
                        continue

    def start(self) -> None:
        with self._lock:
            self._segments.append([])
            self._record()
            self._active = True
        self._thread = threading.Thread(target=self._loop, name="edgepack-energy", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        with self._lock:
            self._record()
            self._active = False

    def resume(self) -> None:
        with self._lock:
            self._segments.append([])
            self._record()
            self._active = True

    def stop(self) -> EnergyReading:
        with self._lock:
            if self._active:
                self._record()
            self._active = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return integrate(self.sensors, self._segments)


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference and where it comes from, as reports show it."""
    per_inference_j: float | None
    source: str                      # "measured: RAPL" | "estimated: profile energy model"
    how: str                         # one sentence: which sensors, or which formula
    average_power_w: float | None = None
    window_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.source.startswith("measured")

    def as_dict(self) -> dict:
        return {"per_inference_j": self.per_inference_j, "source": self.source,
                "kind": "measured" if self.measured else "estimated", "how": self.how,
                "average_power_w": self.average_power_w, "window_s": self.window_s, "notes": list(self.notes)}


# Below this, a window holds too few sensor updates to give a power figure.
MIN_WINDOW_S = 0.02


def energy_per_inference(reading: EnergyReading | None, mean_latency_s: float, p50_latency_s: float,
                         active_power_w: float, predicted_j: float | None, emulated: bool,
                         notes: Sequence[str] = ()) -> EnergyEstimate:
    """Measured energy per inference (average power over the measured window x mean latency) when a
    sensor covered a long enough window; otherwise the profile's estimate: measured p50 latency x the
    profile's active power, or, when the latency is emulated and says nothing about the device, the
    cost model's predicted energy."""
    notes = list(notes)
    if reading is not None and not emulated:
        if reading.seconds >= MIN_WINDOW_S:
            how = (f"average power {reading.power_w:.3g} W over {reading.seconds:.3g} s from "
                   f"{', '.join(reading.sensors)}, x mean latency")
            if reading.source == SOURCE_LABELS[RAPL]:
                notes.append("RAPL counts the whole CPU package, other processes included")
            return EnergyEstimate(reading.power_w * mean_latency_s, reading.source, how, reading.power_w,
                                  reading.seconds, notes)
        notes.append(f"the measured window ({reading.seconds * 1e3:.3g} ms) is too short for the power sensors; "
                     "raise --runs or --min-seconds")
    if emulated:
        if predicted_j is None:
            return EnergyEstimate(None, ESTIMATED_LABEL, "emulated timings say nothing about the device's energy; "
                                  "no cost-model prediction available", notes=notes)
        return EnergyEstimate(predicted_j, ESTIMATED_LABEL, "cost model energy (timings are emulated)", notes=notes)
    return EnergyEstimate(p50_latency_s * active_power_w, ESTIMATED_LABEL,
                          f"measured p50 latency x profile active power {active_power_w:.3g} W", notes=notes)
