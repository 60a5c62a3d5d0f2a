#!/bin/bash
# Regenerates docs/screenshots/: the self-service page's main screens at phone width (390 px)
# in English and Japanese, and the list at desktop width, taken by headless Chromium from the
# built apppw-web (tests/tests/selfservice.rs, test `screenshots`).
# Needs root (a throwaway /etc/pam.d entry for the sign-in), chromium and chromium-driver,
# and a Japanese font (fonts-ipafont-gothic or fonts-noto-cjk), else the Japanese pages show
# empty boxes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! fc-list :lang=ja 2>/dev/null | grep -q .; then
  echo "screenshots: no Japanese font; apt-get install fonts-ipafont-gothic" >&2
  exit 1
fi
out="$PWD/docs/screenshots"
rm -f "$out"/*.png
mkdir -p "$out"
cargo build --release --locked -p apppw -p apppw-web
APPPW_SCREENSHOTS="$out" cargo test --release --locked -p apppw-integration-tests \
  --test selfservice screenshots -- --exact --nocapture
ls "$out"
