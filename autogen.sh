#!/bin/sh
# Generates ./configure and the Makefile.in files; none of them is committed.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf --install --force --warnings=all,no-portability
