#!/bin/sh
# Developer entry point, run as root on Debian 12:
#   packaging/dev.sh demo   install build dependencies, build, run the local demo
#   packaging/dev.sh test   install build dependencies, build (plain and ASan/UBSan), run every
#                           test suite, end with "N passed, N failed"
#   packaging/dev.sh deps   only install the Debian packages
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

DEPS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev libuv1-dev libssl-dev \
libnghttp2-dev libyaml-dev node-llhttp libjansson-dev libpcre2-dev openssl curl \
python3 python3-pytest python3-h2 python3-yaml iproute2 iptables nftables tcpdump procps psmisc \
nghttp2-client stunnel4 haproxy iperf3 wrk debhelper lintian shellcheck dpkg-dev systemd util-linux"

deps() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: run as root (it installs Debian packages)" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $DEPS >/dev/null
}

build() {
    [ -d build ] || meson setup build >/dev/null
    ninja -C build
}

build_asan() {
    [ -d build-asan ] || CC=clang meson setup build-asan -Db_sanitize=address,undefined \
        -Db_lundef=false >/dev/null
    ninja -C build-asan
}

case "${1:-}" in
deps)
    deps
    ;;
demo)
    deps
    build
    exec "$top/packaging/demo"
    ;;
test)
    deps
    build
    build_asan
    exec "$top/tests/run-all"
    ;;
*)
    echo "usage: $0 demo|test|deps" >&2
    exit 2
    ;;
esac
