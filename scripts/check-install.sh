#!/usr/bin/env bash
# Runs docs/operations.md's install commands into a temporary root and checks the
# installed unit with `systemd-analyze verify`: the install section, as written,
# must keep working. Nothing outside the temporary root is changed:
#   - every absolute install path (/opt/villagewatch, /etc/villagewatch,
#     /etc/systemd/system, /var/lib/villagewatch) is moved under the root;
#   - apt-get is not run: the packages it names must be installed already;
#   - useradd and systemctl are not run (they change the machine); `-g villagewatch`
#     is dropped (the group does not exist here) and the unit is verified instead;
#   - pip builds and installs the package as usual but without its dependencies,
#     which this checkout's environment provides (a .pth file), unless
#     CHECK_INSTALL_DEPS=1: then pip fetches them all as on a fresh machine.
# Usage: scripts/check-install.sh [ROOT]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${1:-$(mktemp -d)}
python=${PYTHON:-python3}
mkdir -p "$root"

commands=$(sed -n '/<!-- install:begin -->/,/<!-- install:end -->/p' docs/operations.md |
  sed -n '/^```sh$/,/^```$/p' | grep -v '^```')
[ -n "$commands" ] || { echo "check-install: no install commands in docs/operations.md" >&2; exit 1; }

run() {
  local line=$1
  case "$line" in
    apt-get\ update*) return ;;
    apt-get\ install*)
      for deb in $(echo "$line" | tr ' ' '\n' | grep -v '^-' | tail -n +3); do
        dpkg -s "$deb" >/dev/null 2>&1 || { echo "check-install: $deb is not installed" >&2; exit 1; }
      done
      return ;;
    useradd*|systemctl*) echo "check-install: not run here: $line"; return ;;
  esac
  line=${line//\/opt\/villagewatch/$root/opt/villagewatch}
  line=${line//\/etc\/villagewatch/$root/etc/villagewatch}
  line=${line//\/etc\/systemd\/system/$root/etc/systemd/system}
  line=${line//\/var\/lib\/villagewatch/$root/var/lib/villagewatch}
  line=${line//-g villagewatch /}
  line=${line//python3 -m venv/$python -m venv}
  line=${line//SOURCE/$repo}
  if [[ "$line" == *"/venv/bin/pip install"* && "${CHECK_INSTALL_DEPS:-0}" != 1 ]]; then
    site=$("$root/opt/villagewatch/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    # This checkout's dependencies, seen by the new venv (see the header).
    "${VENV_PYTHON:-$repo/.venv/bin/python}" -c 'import sysconfig; print(sysconfig.get_path("purelib"))' > "$site/check-install-deps.pth"
    line="$line --no-deps -q"
  fi
  echo "+ $line"
  bash -euo pipefail -c "$line"
}

# What a fresh Debian has already.
mkdir -p "$root/etc/systemd/system" "$root/opt" "$root/var/lib"
# The commands come in on fd 3: their stdin stays the script's (hash-password reads it).
while IFS= read -r line <&3; do
  [ -z "$line" ] || [[ "$line" == \#* ]] || run "$line"
done 3<<< "$commands"

unit=$root/etc/systemd/system/villagewatch.service
[ -f "$unit" ] || { echo "check-install: the commands installed no $unit" >&2; exit 1; }
# The unit names the real paths; verify it inside the root, where they were installed,
# with the machine's own system units (targets) beside it.
mkdir -p "$root/usr/lib/systemd"
cp -a /lib/systemd/system "$root/usr/lib/systemd/"
mkdir -p "$root/bin" && cp /bin/kill "$root/bin/kill"  # ExecReload=, resolved in the root
# verify only warns of an unknown or misspelt setting: any word from it fails the check.
said=$(systemd-analyze verify --root="$root" /etc/systemd/system/villagewatch.service 2>&1) || {
  echo "$said" >&2; exit 1; }
[ -z "$said" ] || { echo "check-install: systemd-analyze verify: $said" >&2; exit 1; }
"$root/opt/villagewatch/venv/bin/villagewatch" check-config "$root/etc/villagewatch/config.yaml"
echo "check-install: ok ($root)"
