# The SDK (client/), the contract checks (buf) and the Node.js interop test.
# Included at the end of the root Makefile (`include client/make.mk`), after PY, VENV and
# STAMP are defined; it adds prerequisites to install, test, lint, proto, proto-check and
# clean, and defines the targets below. Needs GNU make.

CLIENT_STAMP := $(VENV)/.client-installed
# buf ships as an npm package; it is installed under .tools/ (ignored by git).
BUF_VERSION := 1.75.0
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_STAMP := $(TOOLS)/.buf-$(BUF_VERSION)
# What `buf breaking` compares the working tree's protos/ with. In a CI checkout without a
# local main branch, pass e.g. BUF_AGAINST='.git#ref=origin/main,subdir=protos'.
BUF_AGAINST ?= .git\#branch=main,subdir=protos
INTEROP_STAMP := interop/node_modules/.package-lock.json

.PHONY: client-install client-proto client-proto-check client-lint buf-lint buf-breaking interop client-clean

# The SDK, editable, with its `facesvc` command, into the project's virtual env.
$(CLIENT_STAMP): $(STAMP) client/pyproject.toml client/make.mk
	$(PY) -m pip install --quiet --disable-pip-version-check -e ./client
	touch $@

client-install: $(CLIENT_STAMP)

# The SDK's own copy of the stubs, generated from the same protos/.
client-proto: $(STAMP)
	$(PY) client/scripts/generate_stubs.py

client-proto-check: $(STAMP)
	$(PY) client/scripts/generate_stubs.py --check

# ruff and mypy --strict with client/pyproject.toml's settings (generated stubs excluded).
client-lint: $(CLIENT_STAMP)
	$(VENV)/bin/ruff check client
	$(VENV)/bin/ruff format --check client
	cd client && $(abspath $(VENV))/bin/mypy

$(BUF_STAMP):
	npm install --prefix $(TOOLS) --no-audit --no-fund --save-exact @bufbuild/buf@$(BUF_VERSION)
	$(BUF) --version
	touch $@

# buf.yaml: STANDARD (v1's DEFAULT) and COMMENTS rules on protos/.
buf-lint: $(BUF_STAMP)
	$(BUF) lint

# Fails when protos/ changed in a way that breaks existing clients.
buf-breaking: $(BUF_STAMP)
	$(BUF) breaking --against '$(BUF_AGAINST)'

$(INTEROP_STAMP): interop/package.json interop/package-lock.json
	cd interop && npm ci --no-audit --no-fund

# The Node.js client against a real server on an ephemeral port (tests/test_interop.py;
# `make test` runs it too, skipping it where node is missing).
interop: $(CLIENT_STAMP) $(INTEROP_STAMP)
	$(PY) -m pytest -q tests/test_interop.py

client-clean:
	rm -rf $(TOOLS) interop/node_modules client/build client/*.egg-info

install: $(CLIENT_STAMP)
test: $(CLIENT_STAMP)
lint: client-lint buf-lint buf-breaking
proto: client-proto
proto-check: client-proto-check
clean: client-clean
