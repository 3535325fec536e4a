"""Builds the Python package `edgepack` (sdk/) and its C++ runtime extension `edgepack._native` (native/)."""
import glob
import os

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ParallelCompile("EDGEPACK_BUILD_JOBS", default=os.cpu_count() or 2).install()

sources = sorted(glob.glob("native/src/*.cpp") + glob.glob("native/kernels/**/*.cpp", recursive=True))
# The host build tunes for this CPU (cross builds for boards go through native/CMakeLists.txt with a
# target toolchain); EDGEPACK_PORTABLE=1 builds a generic x86-64 extension instead.
arch_flags = [] if os.environ.get("EDGEPACK_PORTABLE") else ["-march=native"]



class build_py_with_device_data(build_py):
    """Copy profiles/ and targets/*/target.yaml into the built package as edgepack/data/ (a source
    checkout and editable installs read them from the repository root instead)."""

    def run(self):
        super().run()
        for pattern in ("profiles/*.yaml", "targets/*/target.yaml"):
            for source in glob.glob(pattern):
                destination = os.path.join(self.build_lib, "edgepack", "data", source)
                self.mkpath(os.path.dirname(destination))
                self.copy_file(source, destination)


setup(
    cmdclass={"build_py": build_py_with_device_data},
    packages=find_packages("sdk"),
    package_dir={"": "sdk"},
    package_data={"edgepack": ["examples/*.onnx", "examples/*.npz"]},
    ext_modules=[
        Pybind11Extension(
            "edgepack._native",
            sources + ["native/python/bindings.cpp"],
            include_dirs=["native/include", "native"],
            # Headers carry kernels too (depthwise.h, gemm.h): a changed header rebuilds the extension.
            depends=sorted(glob.glob("native/**/*.h", recursive=True)),
            cxx_std=17,
            extra_compile_args=["-O3", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"] + arch_flags,
        )
    ],
)
