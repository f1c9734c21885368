# shellcheck shell=bash
# Shell functions shared by scripts/setup and scripts/test-deps (sourced, not run).
# Callers set `set -euo pipefail`; every function here is idempotent.

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "error: '$*' needs root and sudo is not installed" >&2
        return 1
    fi
}

# Prints the packages among "$@" that dpkg does not have installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "install ok installed" ]] || echo "$pkg"
    done
}

# Installs the missing packages among "$@" with apt-get, quietly (the log is printed on
# failure). Runs `apt-get update` once, only when something is missing. Services that the
# packages ship (docker-registry's daemon, say) are not started: tests start their own.
apt_install() {
    local -a missing
    mapfile -t missing < <(missing_packages "$@")
    ((${#missing[@]})) || return 0
    local log status=0
    log="$(mktemp)"
    echo "installing: ${missing[*]}" >&2
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 0755 $policy"
        made_policy=1
    fi
    {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || status=$?
    if ((made_policy)); then
        as_root rm -f "$policy"
    fi
    if ((status)); then
        cat "$log" >&2
        echo "error: apt-get failed to install: ${missing[*]}" >&2
    fi
    rm -f "$log"
    return "$status"
}

# Prints the first start (a multiple of 65536, >= 100000) above every range that /etc/subuid
# and /etc/subgid already hand out, so uid and gid ranges of a new user line up.
free_subid_start() {
    local end
    end="$(cat /etc/subuid /etc/subgid 2>/dev/null |
        awk -F: 'NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {
                     e = $2 + $3; if (e > max) max = e }
                 END { print max + 0 }')"
    if ((end < 100000)); then
        echo 100000
    else
        echo $(((end + 65535) / 65536 * 65536))
    fi
}

# Gives USER 65536 subordinate uids and gids unless it already has some.
ensure_subids() {
    local user="$1" start
    local has_uid=0 has_gid=0
    grep -qE "^($user|$(id -u "$user")):" /etc/subuid 2>/dev/null && has_uid=1
    grep -qE "^($user|$(id -u "$user")):" /etc/subgid 2>/dev/null && has_gid=1
    ((has_uid && has_gid)) && return 0
    start="$(free_subid_start)"
    local range="$start-$((start + 65535))"
    # usermod refuses some changes while the user runs processes: then append the line itself.
    if ((!has_uid)); then
        as_root usermod --add-subuids "$range" "$user" 2>/dev/null ||
            echo "$user:$start:65536" | as_root tee -a /etc/subuid >/dev/null
    fi
    if ((!has_gid)); then
        as_root usermod --add-subgids "$range" "$user" 2>/dev/null ||
            echo "$user:$start:65536" | as_root tee -a /etc/subgid >/dev/null
    fi
    echo "gave $user subordinate ids $range (/etc/subuid, /etc/subgid)" >&2
}
