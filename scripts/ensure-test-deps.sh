#!/usr/bin/env bash
# Makes sure the system tools the test suite needs are installed (runs as `pretest`):
#   mosquitto          the tests start their own brokers on their own ports
#   mosquitto-clients  mosquitto_sub / mosquitto_pub
#   chromium           /usr/bin/chromium, driven by playwright-core; we never let
#                      Playwright download a browser build (no network for it here)
#   util-linux         prlimit: a test runs the service under a low open-file limit; flock(1):
#                      the service locks its data dir with it
#   mount, e2fsprogs   mount and mkfs.ext4: the full and read-only disk tests mount a tmpfs and a
#                      loop-mounted ext4 (as root; CI runs as root)
#   libheif-examples   heif-enc: the HEIC tests make their fixtures with it
#   libjxl-tools       cjxl: the JPEG XL tests make their fixtures with it
# Prints nothing and takes a few ms when everything is present.
set -euo pipefail

missing=()

# need PACKAGE FILE...: PACKAGE is missing unless every FILE is an executable.
# Absolute paths, because /usr/sbin is not on a normal user's PATH.
need() {
  local pkg=$1 f
  shift
  for f in "$@"; do
    if [[ ! -x $f ]]; then
      missing+=("$pkg")
      return
    fi
  done
}

need mosquitto /usr/sbin/mosquitto
need mosquitto-clients /usr/bin/mosquitto_sub /usr/bin/mosquitto_pub
need chromium /usr/bin/chromium
need util-linux /usr/bin/prlimit /usr/bin/flock
need mount /usr/bin/mount
need e2fsprogs /usr/sbin/mkfs.ext4
need libheif-examples /usr/bin/heif-enc
need libjxl-tools /usr/bin/cjxl

# mosquitto_service_running: asks the init system about the *service* instance only
# (sysvinit checks its pidfile), so brokers started by tests or by hand are never touched.
mosquitto_service_running() {
  if [[ -d /run/systemd/system ]]; then
    systemctl is-active --quiet mosquitto 2>/dev/null
  else
    command -v service >/dev/null && service mosquitto status >/dev/null 2>&1
  fi
}

if ((${#missing[@]} == 0)); then
  # Already installed: warn only, since someone may run that broker on purpose.
  if mosquitto_service_running; then
    echo "ensure-test-deps: warning: the mosquitto system service is running and may hold port 1883 (stop it with: service mosquitto stop)" >&2
  fi
  exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "ensure-test-deps: missing system packages: ${missing[*]} (install them as root: apt-get install -y ${missing[*]})" >&2
  exit 1
fi

echo "ensure-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1 # needrestart (if present) would otherwise prompt/warn after the install
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null

# apt may start (and, with systemd, enable) the distro broker on 1883. The tests
# bring their own brokers, so stop the service we just caused to run; only via the
# init system, never by killing processes.
if [[ " ${missing[*]} " == *" mosquitto "* ]] && mosquitto_service_running; then
  echo "ensure-test-deps: stopping the mosquitto system service that apt started"
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now mosquitto
  else
    service mosquitto stop
  fi
fi
echo "ensure-test-deps: done"
