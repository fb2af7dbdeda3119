# Sourced by scripts/start and scripts/test: everything they need, installed
# when missing, so that a fresh Debian machine with Python 3.11 is enough.
#   - a virtualenv in .venv with this project installed (editable, with test extras);
#     reinstalled only when setup.cfg or pyproject.toml change
#   - PostgreSQL's server binaries (Debian's postgresql package), unless DATABASE_URL is set
#   - for the tests, systemd-analyze (Debian's systemd package) to check the unit files
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AISERVICE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "setup: need root (or sudo) to run: $*" >&2; return 1
  fi
}

apt_install() {
  echo "setup: installing Debian packages: $*" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    apt_install postgresql
  fi
  # As root, the server runs as the unprivileged 'postgres' user (initdb refuses root).
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
}

ensure_systemd_analyze() {
  # The unit tests run systemd-analyze verify/security (no running systemd needed).
  command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      "$PYTHON" -m venv "$VENV"
    fi
  fi
  local stamp="$VENV/.aiservice-installed" want
  want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing aiservice into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$want" >"$stamp"
  fi
}
