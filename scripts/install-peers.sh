#!/bin/sh
# Installs the Python peers for the reporter's interop test
# (crates/tlsrpt-reporter/tests/interop_parsedmarc.rs): parsedmarc 11.1.0 (a TLS-RPT receiver we
# do not control, ECOSYSTEM.md §2) and, with it, dkimpy (an independent DKIM verifier), into a
# virtualenv under target/ so nothing system-wide changes. Safe to run again: an existing venv
# with the right version is kept.
set -eu
cd "$(dirname "$0")/.."

VENV=target/peers-venv
PARSEDMARC=11.1.0

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import parsedmarc, dkim, sys; sys.exit(0 if parsedmarc.__version__ == '$PARSEDMARC' else 1)" 2>/dev/null; then
    echo "parsedmarc $PARSEDMARC already installed in $VENV"
    exit 0
fi

mkdir -p target
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "parsedmarc==$PARSEDMARC"
"$VENV/bin/python" -c "import parsedmarc, dkim; print('installed parsedmarc', parsedmarc.__version__, 'in $VENV')"
