#!/usr/bin/env bash
# fresh-check.sh — run the README's two set-up commands on a truly fresh Debian 12.
#
# For people who change dependencies (scripts/deps.sh, the build, the tests); not part of
# .ci/run. It builds a minimal Debian 12 (bookworm) root with debootstrap, copies the
# repository's files into it (tracked and untracked-but-not-ignored files: no .git, no
# build folders, and nothing from beside the clone), and runs, inside it with chroot,
#     bash scripts/test.sh      (build + tests, then again under ASan+UBSan)
#     bash scripts/main.sh      (the main job on the embedded defaults)
# printing each command's exit code and wall time. The root sees the same package
# archive as this machine (its apt sources are copied in), and nothing else of it.
#
# Usage: sudo bash scripts/fresh-check.sh [ROOT_DIR]
#   ROOT_DIR   where to build the root (default /var/tmp/gpunas-fresh; emptied first)
#   FRESH_ONLY=test|main   run just one of the two commands
#   FRESH_KEEP=1           keep the root afterwards (default: removed on success)
# Logs: ROOT_DIR.logs/{debootstrap,test,main}.log. Exit status: 0 when both commands exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
ROOT=${1:-/var/tmp/gpunas-fresh}
LOGS="$ROOT.logs"
ONLY=${FRESH_ONLY:-}

if [ "$(id -u)" != 0 ]; then
  echo "fresh-check: needs root (debootstrap and chroot)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  echo "fresh-check: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi

# The archive this machine installs from: the first bookworm entry of its apt sources.
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  echo "fresh-check: no bookworm archive found in this machine's apt sources" >&2
  exit 2
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

rm -rf "$ROOT" "$LOGS"
mkdir -p "$ROOT" "$LOGS"
t0=$(date +%s)
echo "fresh-check: debootstrap --variant=minbase bookworm into $ROOT"
if ! debootstrap --variant=minbase bookworm "$ROOT" "$mirror" >"$LOGS/debootstrap.log" 2>&1; then
  echo "fresh-check: debootstrap failed; see $LOGS/debootstrap.log" >&2
  tail -5 "$LOGS/debootstrap.log" >&2
  exit 1
fi
echo "fresh-check: root ready in $(($(date +%s) - t0)) s"

# Same archive view as this machine: its Debian sources and apt's Acquire settings.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/"
  rm -f "$ROOT/etc/apt/sources.list"
fi
for f in /etc/apt/apt.conf.d/*; do
  grep -q '^Acquire::' "$f" 2>/dev/null && cp "$f" "$ROOT/etc/apt/apt.conf.d/"
done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

for m in proc sys dev dev/pts; do
  mkdir -p "$ROOT/$m"
  mount --bind "/$m" "$ROOT/$m"
  mounted+=("$ROOT/$m")
done

# The repository's own files, as a clone would have them (no .git, no build output).
mkdir -p "$ROOT/root/gpunas"
git -C "$SRC" ls-files -z --cached --others --exclude-standard |
  (cd "$SRC" && xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$ROOT/root/gpunas"
label="$(git -C "$SRC" rev-parse --short HEAD)$(git -C "$SRC" diff --quiet HEAD || echo '+changes')"
echo "fresh-check: copied $(find "$ROOT/root/gpunas" -type f | wc -l) files of the repository at commit $label"
if [ -e "$ROOT/root/shared" ]; then
  echo "fresh-check: $ROOT/root/shared exists; it must not" >&2
  exit 2
fi

# A network that reaches PyPI only through a TLS-inspecting proxy hands its CA to the
# host (PIP_CERT); it belongs to the network, not to the machine, so the root gets the
# same bundle for pip (scripts/venv.sh) and nothing else of the host.
PIP_ENV=()
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  mkdir -p "$ROOT/etc/gpunas-fresh"
  cp "$PIP_CERT" "$ROOT/etc/gpunas-fresh/network-ca.crt"
  PIP_ENV=(PIP_CERT=/etc/gpunas-fresh/network-ca.crt)
  echo "fresh-check: pip in the root uses the host network's CA bundle ($PIP_CERT)"
fi

run_in_root() { # name command
  local name=$1 cmd=$2 start rc
  start=$(date +%s)
  set +e
  chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${PIP_ENV[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /root/gpunas && $cmd" >"$LOGS/$name.log" 2>&1
  rc=$?
  set -e
  local secs=$(($(date +%s) - start))
  printf 'fresh-check: %-22s exit %d in %dm%02ds  (log %s)\n' "$cmd" "$rc" $((secs / 60)) $((secs % 60)) "$LOGS/$name.log"
  tail -3 "$LOGS/$name.log" | sed 's/^/    /'
  return $rc
}

status=0
if [ "$ONLY" != main ]; then run_in_root test "bash scripts/test.sh" || status=1; fi
if [ "$ONLY" != test ]; then run_in_root main "bash scripts/main.sh" || status=1; fi
echo "fresh-check: commit $label, total $((($(date +%s) - t0) / 60)) min, status $status"
cleanup
mounted=()
if [ "$status" = 0 ] && [ -z "${FRESH_KEEP:-}" ]; then rm -rf "$ROOT"; fi
exit $status
