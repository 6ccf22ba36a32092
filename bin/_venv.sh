# Sourced by bin/run and bin/test: make .venv and install the project into it when
# pyproject.toml changed since the last install. Needs Python 3.11 on PATH.
ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        python="$candidate"; break
      fi
    done
  fi
  if [ -z "$python" ]; then
    echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv with $python ..."
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  local stamp=".venv/.installed-${extras:-base}"
  local digest
  digest=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing dependencies into .venv ..."
    local target="."
    [ -n "$extras" ] && target=".[$extras]"
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e "$target" > .venv/install.log 2>&1; then
      cat .venv/install.log >&2
      echo "Installing dependencies failed (log above, also in .venv/install.log)." >&2
      exit 1
    fi
    echo "$digest" > "$stamp"
  fi
}
