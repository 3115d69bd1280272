#!/usr/bin/env bash
# Install the offline data sets that samtheory.data reads, where the system
# can provide them. Today that is Fashion-MNIST, from the Debian package
# dataset-fashion-mnist (IDX files under /usr/share/datasets/fashion-mnist).
# MNIST-1D needs no install (generated locally by the mnist1d Python package);
# CIFAR is never fetched (pass load_cifar the directory you extracted).
#
# Idempotent: an installed package is left alone. Runs apt-get as root, or
# through `sudo -n` (never prompts). `apt-get update` runs only when apt does
# not know the package yet.
#
# Exit status: 0 even when nothing could be installed (no apt, no root, no
# network) -- a warning is printed and the loaders then raise DataError. Set
# SAMTHEORY_REQUIRE_DATASETS=1 to exit 1 instead, e.g. in CI that must test
# on the real files.
#
# Only bash builtins run before apt is found, so the script also behaves on a
# machine with an almost empty PATH.

set -u

package=dataset-fashion-mnist
data_dir=/usr/share/datasets/fashion-mnist

give_up() {
    echo "install_datasets.sh: WARNING: $1" >&2
    echo "install_datasets.sh: WARNING: Fashion-MNIST is not available; load_fashion_mnist() will raise DataError" \
         "(install $package yourself or pass load_fashion_mnist(directory=...))." >&2
    if [[ "${SAMTHEORY_REQUIRE_DATASETS:-0}" == "1" ]]; then
        exit 1
    fi
    exit 0
}

report_files() {
    echo "Fashion-MNIST ($package) files in $data_dir:"
    local file found=0
    for file in "$data_dir"/*-ubyte*; do
        [[ -f "$file" ]] || continue
        echo "  $file"
        found=1
    done
    if [[ "$found" == "0" ]]; then
        give_up "$package is installed but $data_dir holds no IDX files"
    fi
}

is_installed() {
    command -v dpkg-query >/dev/null 2>&1 || return 1
    [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" == "install ok installed" ]]
}

if is_installed; then
    echo "$package is already installed."
    report_files
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v apt-cache >/dev/null 2>&1; then
    give_up "apt-get not found (not a Debian/Ubuntu system?); cannot install $package"
fi

if [[ "${EUID:-$(id -u)}" == "0" ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as_root=(sudo -n)
else
    give_up "not root and passwordless sudo is unavailable; run: sudo apt-get install $package"
fi

has_candidate() {
    # "Candidate: (none)" or no candidate line at all means apt has no
    # installable version.
    local policy
    policy="$(apt-cache policy "$package" 2>/dev/null)" || return 1
    [[ "$policy" == *"Candidate:"* && "$policy" != *"Candidate: (none)"* ]]
}

if ! has_candidate; then
    echo "apt does not know $package yet; running apt-get update ..."
    ${as_root[@]+"${as_root[@]}"} apt-get update -qq || give_up "apt-get update failed"
    has_candidate || give_up "no configured apt source provides $package"
fi

echo "Installing $package ..."
# Through env, because sudo resets the environment.
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" \
    || give_up "apt-get install $package failed"
is_installed || give_up "$package still not installed after apt-get install"
report_files
exit 0
