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

# The CPU library and its C tests again under AddressSanitizer and UBSan.
test-asan:
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DTMRUN_SANITIZE=ON -DTMRUN_CUDA=OFF >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	@cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -R '^c\.'

run: build
	@$(BUILD)/tmrun generate.lua --model $(or $(MODEL),tests/data/goldens/llama3_gqa) --prompt-ids 1,2,3,4 --max-new-tokens 32 --ignore-eos

clean:
	rm -rf $(BUILD) $(BUILD)-asan
