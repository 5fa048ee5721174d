#!/usr/bin/env bash
# Makes sure the real peers the end-to-end tests run against are installed (openssl, curl, nginx,
# HAProxy). On a fresh Debian machine as root it installs what is missing; elsewhere it says what to
# install. Run by `npm test` (pretest) and by .ci/run.
set -euo pipefail
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test peers: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system services on install; the tests run their own instances.
  for svc in nginx haproxy; do
    command -v systemctl >/dev/null 2>&1 && systemctl stop "$svc" >/dev/null 2>&1 || true
    command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
  done
  exit 0
fi
echo "The end-to-end tests need: ${need[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${need[*]}) and run npm test again." >&2
exit 1
