#!/bin/sh
# Makes way for the virtual environment at $1 before `make` builds or reuses it.
# Kept: a directory, or a link to a directory that is a Python environment (has pyvenv.cfg) or is
# empty (an environment kept elsewhere, as CI keeps one in its cache). Removed, so a fresh one is
# built in its place: a dangling link (a clone from another machine), a link to anything else, and
# a plain file.
set -eu
venv=$1
if [ -L "$venv" ]; then
    if [ ! -d "$venv" ]; then
        rm "$venv"
    elif [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
        rm "$venv"
    fi
elif [ -e "$venv" ] && [ ! -d "$venv" ]; then
    rm "$venv"
fi
