#!/usr/bin/env bash
# Makes sure the real peers the tests run against are installed (openssl, curl, nginx, HAProxy, the
# PostgreSQL server binaries the store tests start a throw-away server from, Debian's python3 with
# python3-requests and testssl.sh for the proxy interop tests). On a fresh Debian machine as root it
# installs what is missing; elsewhere it says what to install. Run by `npm test` (pretest) and by
# .ci/run.
set -euo pipefail
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# The store tests run their own throw-away server (test/support/postgres.ts) from these binaries.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
  { [ -n "${MTLS_PG_BINDIR:-}" ] && [ -x "$MTLS_PG_BINDIR/initdb" ]; } || need+=(postgresql)
# Proxy interop (test/e2e/proxy-interop.test.ts runs Debian's /usr/bin/python3, not a pyenv one) and
# the TLS scan of a listener (test/e2e/proxy-testssl.test.ts).
/usr/bin/python3 -c 'import requests' >/dev/null 2>&1 || need+=(python3-requests)
command -v testssl >/dev/null 2>&1 || [ -x /usr/bin/testssl ] || need+=(testssl.sh)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test peers: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system services on install (postgresql also creates and starts a cluster);
  # the tests run their own instances. Under .ci/run a policy-rc.d already keeps them from starting.
  for svc in nginx haproxy postgresql; do
    command -v systemctl >/dev/null 2>&1 && systemctl stop "$svc" >/dev/null 2>&1 || true
    command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
  done
  # Without an init system the Debian cluster (e.g. 15/main) may still run: stop it directly.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r ver name _; do
      pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
    done
  fi
  exit 0
fi
echo "The end-to-end tests need: ${need[*]}. Install them (Debian/Ubuntu: sudo apt-get install ${need[*]}) and run npm test again." >&2
exit 1
