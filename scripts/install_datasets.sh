#!/usr/bin/env bash
# Install the offline data sets that samtheory.data reads, where the system
# can provide them. Today that is Fashion-MNIST, from the Debian package
# dataset-fashion-mnist (IDX files under /usr/share/datasets/fashion-mnist).
# MNIST-1D needs no install (generated locally by the mnist1d Python package);
# CIFAR is never fetched (pass load_cifar the directory you extracted).
#
# Idempotent: an installed package is left alone; otherwise apt_install.sh
# installs it (root or `sudo -n`, `apt-get update` only when needed).
#
# Exit status: 0 even when nothing could be installed (no apt, no root, no
# network) -- a warning is printed and the loaders then raise DataError. Set
# SAMTHEORY_REQUIRE_DATASETS=1 to exit 1 instead, e.g. in CI that must test
# on the real files.

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

# Builtins only (no dirname): this script must behave on an almost empty PATH.
here="${BASH_SOURCE[0]%/*}"
[[ "$here" == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source=apt_install.sh
source "$here/apt_install.sh"
apt_install "$package"
is_installed || give_up "$package still not installed after apt-get install"
report_files
exit 0
