#!/bin/bash
# Runs every test: unit, property, CLI, checkpassword and PAM against real Dovecot and PAM.
# Needs the packages of scripts/setup.sh; the Dovecot and /etc/pam.d tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --locked
cargo test --release --workspace --locked
