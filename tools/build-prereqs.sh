#!/usr/bin/env bash
# Before a first build: is everything the native dependencies need installed?
#
#   tools/build-prereqs.sh TARGET_PROFILE_DIR      (make build runs it: target/release)
#
# LightGBM is compiled from source by lightgbm3-sys's build script (cmake, a C++
# compiler, then bindgen, which loads libclang), and TLS comes from OpenSSL
# (openssl-sys: pkg-config and libssl-dev). Without one of them cargo fails deep
# into the build (LightGBM's bindings come after ten minutes of compiling) with
# a build script's panic. This says what is missing, each on one line, in a
# fraction of a second, and exits 2.
#
# A dependency already built in TARGET_PROFILE_DIR is not checked again: a
# machine that built once does not need cmake to rebuild our own crates.
# The searches follow the build scripts': libclang as clang-sys looks for it
# (LIBCLANG_PATH alone when set), OpenSSL as openssl-sys does (OPENSSL_DIR,
# else pkg-config).
set -uo pipefail

dir="${1:?usage: tools/build-prereqs.sh TARGET_PROFILE_DIR}"
missing=()
need() { missing+=("$1"); }

built() { compgen -G "$dir/build/$1" > /dev/null; }

if ! command -v "${CARGO:-cargo}" > /dev/null; then
    need "cargo: not found; install Rust 1.89 or newer (https://rustup.rs)"
fi

if ! built 'lightgbm3-sys-*/out/bindings.rs'; then
    cxx="${CXX:-c++}"
    if ! command -v "$cxx" > /dev/null; then
        need "a C++ compiler ($cxx): not found, LightGBM is compiled from source; apt-get install g++"
    fi
    cmake_bin="${CMAKE:-cmake}"
    if ! command -v "$cmake_bin" > /dev/null; then
        need "cmake: not found, LightGBM needs cmake 3.28 or newer; pip install cmake (Debian 12's apt cmake is 3.25, too old)"
    else
        version=$("$cmake_bin" --version 2>/dev/null | awk 'NR == 1 { print $3 }')
        major=${version%%.*}
        rest=${version#*.}
        minor=${rest%%.*}
        if ! [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]]; then
            need "cmake: $(command -v "$cmake_bin") does not say its version; LightGBM needs cmake 3.28 or newer"
        elif ((major < 3 || (major == 3 && minor < 28))); then
            need "cmake $version ($(command -v "$cmake_bin")) is too old: LightGBM needs 3.28 or newer; pip install cmake"
        fi
    fi
    # clang-sys loads libclang at run time: any of these names, in LIBCLANG_PATH
    # alone when it is set, else llvm-config's prefix, the library paths and the
    # usual system folders.
    names=(libclang.so 'libclang-*.so' 'libclang.so.*' 'libclang-*.so.*')
    if [[ -n "${LIBCLANG_PATH:-}" ]]; then
        if [[ -f "$LIBCLANG_PATH" ]]; then
            folders=("$(dirname "$LIBCLANG_PATH")")
        else
            folders=("$LIBCLANG_PATH")
        fi
    else
        folders=()
        if prefix=$(llvm-config --prefix 2>/dev/null); then
            folders+=("$prefix/lib" "$prefix/lib64")
        fi
        IFS=: read -ra extra <<< "${LD_LIBRARY_PATH:-}:${LIBRARY_PATH:-}"
        folders+=("${extra[@]}" '/usr/local/llvm*/lib*' '/usr/local/lib*/*/*' '/usr/local/lib*/*' '/usr/local/lib*'
            '/usr/lib*/*/*' '/usr/lib*/*' '/usr/lib*')
    fi
    found=
    for folder in "${folders[@]}"; do
        [[ -n "$folder" ]] || continue
        for name in "${names[@]}"; do
            if compgen -G "$folder/$name" > /dev/null; then
                found=yes
                break 2
            fi
        done
    done
    if [[ -z "$found" ]]; then
        where=${LIBCLANG_PATH:+ in LIBCLANG_PATH=$LIBCLANG_PATH}
        need "libclang: not found$where, LightGBM's Rust bindings are generated with it; apt-get install clang libclang-dev"
    fi
fi

if ! built 'openssl-sys-*/output' && [[ -z "${OPENSSL_DIR:-}" ]]; then
    if ! command -v pkg-config > /dev/null; then
        need "pkg-config: not found, the TLS library (OpenSSL) is found with it; apt-get install pkg-config libssl-dev"
    elif ! pkg-config --exists openssl 2>/dev/null; then
        need "OpenSSL's development files: pkg-config does not know openssl; apt-get install libssl-dev"
    fi
fi

if ((${#missing[@]})); then
    for line in "${missing[@]}"; do
        echo "build: missing: $line" >&2
    done
    echo "build: nothing was built; install the above and run make again (the README's table lists what the build and the tests need)" >&2
    exit 2
fi
