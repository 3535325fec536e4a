# A portable build of native/ for x86-64 Linux machines other than the build host (the host build
# uses -march=native, which may not run elsewhere):
#
#   cmake -S native -B build-x86_64 -DCMAKE_TOOLCHAIN_FILE=targets/linux-x86_64/toolchain.cmake
#
# Executables are linked statically, so edgepack-bench runs whatever the target's libc.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(CMAKE_CXX_COMPILER g++)

# The kernels choose their ISA at compile time, and x86-64-v3 (AVX2 + FMA, every x86-64 CPU since
# Haswell and Zen) selects the AVX2 ones. Atom-class boards without AVX need -DEDGEPACK_MARCH=x86-64-v2.
set(EDGEPACK_MARCH x86-64-v3 CACHE STRING "-march of the x86-64 build")
set(CMAKE_CXX_FLAGS_INIT "-march=${EDGEPACK_MARCH}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
