#!/usr/bin/env bash
# Installs what the test suite needs (idempotent), then runs `swift test`.
# The tests use real peers: python3's smtplib as the external SMTP client,
# real SQLite and real TLS; everything runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need_apt+=(libsqlite3-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
command -v swaks >/dev/null 2>&1 || need_apt+=(swaks)
# The dashboard's real-browser test (headless chromium driven by selenium) and
# the metrics format check (promtool from Debian's prometheus package).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# The independent DKIM verifier (dkimpy, PyNaCl for ed25519-sha256) and its test DNS server (dnslib, dnspython).
if ! python3 -c "import dkim, nacl, dns.resolver, dnslib" >/dev/null 2>&1; then
  python3 -m pip install --quiet dkimpy dnspython dnslib pynacl \
    || python3 -m pip install --quiet --break-system-packages dkimpy dnspython dnslib pynacl
fi
# selenium drives chromium; prometheus_client parses /metrics independently of
# promtool; schemathesis checks the admin API against docs/openapi.json.
if ! python3 -c "import selenium, prometheus_client" >/dev/null 2>&1 || ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet selenium prometheus_client schemathesis \
    || python3 -m pip install --quiet --break-system-packages selenium prometheus_client schemathesis
fi

exec swift test "$@"
