#!/usr/bin/env sh
# Print the path of a working Python 3.10 interpreter, or explain what to install.
# Rasa 3.6 (the last open-source Rasa) needs Python < 3.11.
for candidate in "${PYTHON310:-}" python3.10; do
    [ -n "$candidate" ] || continue
    if path=$(command -v "$candidate" 2>/dev/null) && "$path" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
        echo "$path"; exit 0
    fi
done
if command -v pyenv >/dev/null 2>&1; then
    for path in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do
        if [ -x "$path" ] && "$path" -c 'import venv' 2>/dev/null; then
            echo "$path"; exit 0
        fi
    done
fi
for path in /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -x "$path" ] && { echo "$path"; exit 0; }
done
cat >&2 <<'MSG'
error: Python 3.10 not found.
  alarmbot runs on Rasa 3.6, which needs Python 3.10 (not 3.11 or newer).
  Install one of:
    - pyenv install 3.10     (then re-run make)
    - apt-get install python3.10 python3.10-venv   (where your distribution has it)
  or point PYTHON310=/path/to/python3.10 at an existing interpreter.
MSG
exit 1
