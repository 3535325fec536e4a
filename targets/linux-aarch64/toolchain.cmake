# Cross build of native/ for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu:
#
#   cmake -S native -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=targets/linux-aarch64/toolchain.cmake
#
# Executables are linked statically, so edgepack-bench runs on any aarch64 Linux whatever its libc,
# and on an x86 host under qemu-user (qemu-aarch64-static -cpu max) without an aarch64 sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# ARMv8.2-A with the dot-product instructions (Cortex-A55/A76 and newer: Pi 5, Jetson Orin, phones).
# Armv8.0 cores (Cortex-A53/A72: Raspberry Pi 3 and 4) cannot run that code: build for them with
# -DEDGEPACK_MARCH=armv8-a.
set(EDGEPACK_MARCH armv8.2-a+dotprod CACHE STRING "-march of the aarch64 build")
set(CMAKE_CXX_FLAGS_INIT "-march=${EDGEPACK_MARCH}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# Libraries and headers come from the cross sysroot only; build tools from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
