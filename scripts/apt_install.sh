# Sourced by install_datasets.sh and install_system_deps.sh: the one place
# that installs a Debian package. The caller defines give_up MESSAGE (warns
# and exits as that script's policy says), then calls apt_install PACKAGE.
#
# apt-get runs as root, or through `sudo -n` (never prompts); `apt-get
# update` runs only when apt does not know the package yet. Only bash
# builtins run before apt is found, so it behaves on an almost empty PATH.

apt_install() {
    local package=$1 as_root policy
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
    # "Candidate: (none)" or no candidate line at all means apt has no installable version.
    _apt_has_candidate() {
        policy="$(apt-cache policy "$package" 2>/dev/null)" || return 1
        [[ "$policy" == *"Candidate:"* && "$policy" != *"Candidate: (none)"* ]]
    }
    if ! _apt_has_candidate; then
        echo "apt does not know $package yet; running apt-get update ..."
        ${as_root[@]+"${as_root[@]}"} apt-get update -qq || give_up "apt-get update failed"
        _apt_has_candidate || give_up "no configured apt source provides $package"
    fi
    echo "Installing $package ..."
    # Through env, because sudo resets the environment.
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" \
        || give_up "apt-get install $package failed"
}
