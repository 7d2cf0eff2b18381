# The README's two commands: `make run` and `make test`.  Everything else is a helper.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build deps test test-asan run clean

all: build

deps:
	@scripts/setup-deps.sh --build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@scripts/setup-deps.sh
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

# Every test again on a Debug build with AddressSanitizer and UBSan (CPU only).
test-asan:
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DTMRUN_SANITIZE=ON -DTMRUN_CUDA=OFF >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	@cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 ctest --output-on-failure -j $(JOBS)

# Serves the embedded default model (models/tmrun-demo) on PORT (default 23333):
# the chat page at /chat, the API docs at /docs.  MODEL=DIR serves another.
PORT ?= 23333
run: build
	@$(BUILD)/tmrun serve.lua $(MODEL) --server-port $(PORT)

clean:
	rm -rf $(BUILD) $(BUILD)-asan
