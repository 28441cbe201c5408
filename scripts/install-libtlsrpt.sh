#!/bin/sh
# Installs libtlsrpt (Debian trixie's libtlsrpt0 + libtlsrpt0-dev) on a Debian bookworm host,
# for tlsrpt's interop test (crates/tlsrpt/tests/interop_libtlsrpt.rs). Run as root.
#
# Exactly as ECOSYSTEM.md §2.2: trixie is added with a LOW pin (priority 100), so nothing else
# is ever upgraded from trixie; only the two libtlsrpt packages come from there. The mirror is
# derived from the machine's own Debian source, so no host name is hard-coded.
#
# libtlsrpt is LGPL-3.0-or-later: it is linked only into the C test helper, never into tlsrpt.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "install-libtlsrpt.sh: must run as root" >&2
    exit 1
fi

if [ -f /usr/include/tlsrpt.h ] && ldconfig -p 2>/dev/null | grep -q 'libtlsrpt\.so'; then
    echo "libtlsrpt already installed: $(dpkg-query -W -f '${Version}' libtlsrpt0-dev 2>/dev/null || echo unknown)"
    exit 0
fi

MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$MIRROR" ]; then
    MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
if [ -z "$MIRROR" ]; then
    echo "install-libtlsrpt.sh: cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
    exit 1
fi

printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\n' "$MIRROR" \
    > /etc/apt/sources.list.d/trixie.sources
printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' \
    > /etc/apt/preferences.d/trixie-low

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y -t trixie libtlsrpt0 libtlsrpt0-dev

echo "installed libtlsrpt $(dpkg-query -W -f '${Version}' libtlsrpt0-dev)"
