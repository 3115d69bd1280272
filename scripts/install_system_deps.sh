#!/usr/bin/env bash
# Install the system packages samtheory's tests use, where the system can
# provide them: the offline data sets (scripts/install_datasets.sh: Debian's
# Fashion-MNIST) and Debian's `chromium`, the browser the demo tests drive
# through the playwright Python package (nothing downloads a browser).
#
# Like install_datasets.sh: apt-get as root or through `sudo -n` (never
# prompts); `apt-get update` only when apt does not know the package; an
# installed package is left alone; without apt, root or network it warns and
# exits 0 (the browser tests then skip, or fail under CI=true).
# SAMTHEORY_REQUIRE_BROWSER=1 makes a missing browser an error (exit 1).

set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/install_datasets.sh"
status=$?
[[ $status == 0 ]] || exit $status

package=chromium
browser=/usr/bin/chromium

give_up() {
    echo "install_system_deps.sh: WARNING: $1" >&2
    echo "install_system_deps.sh: WARNING: no browser at $browser; the demo browser tests will skip" \
         "(install Debian's $package yourself, or set SAMTHEORY_CHROMIUM to a Chromium executable)." >&2
    if [[ "${SAMTHEORY_REQUIRE_BROWSER:-0}" == "1" ]]; then
        exit 1
    fi
    exit 0
}

if [[ -x "$browser" ]]; then
    echo "$package is already installed ($browser)."
    exit 0
fi
# shellcheck source=apt_install.sh
source "$here/apt_install.sh"
apt_install "$package"
[[ -x "$browser" ]] || give_up "$package installed but $browser is missing"
echo "$package installed: $("$browser" --version 2>/dev/null)"
exit 0
