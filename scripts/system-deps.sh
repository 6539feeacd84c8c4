#!/usr/bin/env bash
# System packages LensForge uses: Tesseract (OCR plugin), DejaVu fonts (test images),
# PostgreSQL (the store's second backend, started by the tests), wrk (bench/overhead.py),
# Chromium (the dashboard's browser tests, driven by Playwright; never `playwright install`).
# As root with apt-get they are installed; otherwise the one command to run is printed.
set -euo pipefail
PACKAGES=(tesseract-ocr tesseract-ocr-eng fonts-dejavu-core postgresql wrk chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Optional system packages are missing: ${missing[*]}"
  echo "Install them with: sudo apt-get install -y ${missing[*]}"
  echo "(LensForge still runs; plugins that need them report UNAVAILABLE.)"
fi
