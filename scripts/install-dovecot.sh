#!/bin/sh
# Installs Dovecot's IMAP server for the receiver's IMAP polling tests
# (crates/tlsrpt-receiver/tests/imap.rs). Idempotent and quiet when already installed.
# The package's service is not started: the tests run their own private instance.
set -eu
if command -v dovecot >/dev/null 2>&1 && command -v doveadm >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq dovecot-imapd >/dev/null
command -v dovecot >/dev/null 2>&1 || { echo "install-dovecot.sh: dovecot not found after install" >&2; exit 1; }
