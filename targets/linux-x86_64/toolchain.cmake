# A portable build of native/ for x86-64 Linux machines other than the build host (the host build
# uses -march=native, which may not run elsewhere):
#
#   cmake -S native -B build-x86_64 -DCMAKE_TOOLCHAIN_FILE=targets/linux-x86_64/toolchain.cmake
#
# x86-64-v3 (AVX2, FMA) selects the AVX2 kernels and runs on every x86-64 CPU since Haswell / Zen;
# pass -DEDGEPACK_X86_64_LEVEL=x86-64-v2 for Atom-class boards without AVX. Executables are linked
# statically so edgepack-bench runs whatever the target's libc.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(CMAKE_CXX_COMPILER g++)

set(EDGEPACK_X86_64_LEVEL x86-64-v3 CACHE STRING "x86-64 micro-architecture level (-march)")
set(CMAKE_CXX_FLAGS_INIT "-march=${EDGEPACK_X86_64_LEVEL}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
