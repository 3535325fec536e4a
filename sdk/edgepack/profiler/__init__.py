"""Profile artifacts on a device and check them against its profile (docs/profiler.md).

    from edgepack.profiler import make_runner, profile_artifact
    from edgepack.profiles import load_profile

    report = profile_artifact("model.epk", make_runner("ssh://pi@board"), load_profile("raspberry-pi-5"),
                              runs=100, per_op=True)
    print(report.table()); report.write_json("profile.json"); report.write_html("profile.html")
"""
from .compare import CompareError, Comparison, time_onnx, time_tflite
from .energy import EnergyEstimate, EnergyMeter, EnergyReading, Sensor, SensorSet, discover_sensors
from .native_build import BenchError, NativeBuildError, build_bench, read_outputs, run_bench
from .predict import Prediction, graph_from_artifact, predict
from .report import Check, ProfileReport, format_value, profile_artifact, resolve_budgets
from .runners import (BenchRunner, LocalRunner, Measurement, OpTime, OutputCheck, QemuAarch64Runner, Runner,
                      make_runner, parse_cpus, random_inputs)
from .ssh import SshError, SshRunner, SshTarget
from .stats import LatencyStats, percentile, summarize

__all__ = [
    "BenchError", "BenchRunner", "Check", "CompareError", "Comparison", "EnergyEstimate", "EnergyMeter",
    "EnergyReading", "LatencyStats", "LocalRunner", "Measurement", "NativeBuildError", "OpTime", "OutputCheck",
    "Prediction", "ProfileReport", "QemuAarch64Runner", "Runner", "Sensor", "SensorSet", "SshError", "SshRunner",
    "SshTarget", "build_bench", "discover_sensors", "format_value", "graph_from_artifact", "make_runner",
    "parse_cpus", "percentile", "predict", "profile_artifact", "random_inputs", "read_outputs", "resolve_budgets",
    "run_bench", "summarize", "time_onnx", "time_tflite",
]
