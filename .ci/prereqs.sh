#!/usr/bin/env bash
# System tools the local services need. Installs kcat with apt-get when running as root (CI);
# otherwise says exactly what to install. Never skips silently.
set -euo pipefail
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1: $2"); }
need python3 "Python 3.11+"
need java "Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
need mvn "Maven 3.8+ (Debian: apt-get install maven)"
need go "Go 1.24+ (https://go.dev/dl)"
if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing kcat (Debian package) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  else
    missing+=("kcat: the benchmark baseline (Debian/Ubuntu: sudo apt-get install kcat; macOS: brew install kcat)")
  fi
fi
# Debian's Chromium for the dashboard's browser tests (Playwright drives /usr/bin/chromium; its own download is
# out of reach); optional off CI (those tests then skip, saying so).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (Debian package) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no /usr/bin/chromium: the dashboard's browser tests need it (sudo apt-get install chromium)" >&2
  fi
fi
# Docker engine (Debian's docker.io: dockerd, containerd, runc) and debootstrap for `make images` and the
# image tests; optional off CI (those tests then skip, saying so).
if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing docker.io and debootstrap (Debian packages) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
  else
    echo "note: no dockerd/debootstrap: make images and tests/images need them (sudo apt-get install docker.io debootstrap)" >&2
  fi
fi
# The local cluster's node (tests/cluster): Debian's containerd (it comes with docker.io above) and CNI plugins.
if [ ! -x /usr/lib/cni/bridge ] || ! command -v containerd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing containerd and containernetworking-plugins (Debian packages) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd containernetworking-plugins iptables iproute2 >/dev/null
  else
    echo "note: no containerd/CNI plugins: the local cluster's node test skips (sudo apt-get install containerd containernetworking-plugins)" >&2
  fi
fi
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]}' || true)
if [ -n "${java_major:-}" ] && [ "$java_major" -lt 17 ]; then missing+=("java: Kafka 4 needs Java 17+, found $java_major"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
