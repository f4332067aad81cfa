# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
.PHONY: format format-check deps build test unit e2e demo fuzz bench bench-http bench-tracking bench-sweep bench-distributed bench-studio bench-data bench-gpu bench-pipeline bench-sched sanitize clean

BUILD ?= build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	@cmake --build $(BUILD)
	@bash scripts/build-ui.sh

# Two at a time: the end-to-end files are independent (each has its own workspaces and, through
# tests/e2e/isolated.sh, its own network namespace), and this halves their time on two cores.
test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j2

unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -L unit

e2e: build
	@ctest --test-dir $(BUILD) --output-on-failure -j2 -L e2e

# Against an AddressSanitizer + UndefinedBehaviorSanitizer build (CI runs it): every unit test and the
# end-to-end files labelled "sanitize" in CMakeLists.txt (those that feed the parsers, HTTP and the sandbox
# hostile input), one at a time (the sanitizers slow everything, and some tests bound a latency).
sanitize: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
	@cmake --build build-asan
	@bash scripts/build-ui.sh
	@ctest --test-dir build-asan --output-on-failure -L "unit|sanitize"

# The demo needs the two binaries and the studio, not the tests and benches `make build` also makes.
demo: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
	@cmake --build $(BUILD) --target cairn cairn-server
	@bash scripts/build-ui.sh
	@bash examples/demo.sh

# The tree as .clang-format and ui/.prettierrc.json say: check (CI runs it) or apply.
format-check: deps
	@bash scripts/check-format.sh

format:
	@bash scripts/check-format.sh --fix

# libFuzzer targets (clang-14, ASan + UBSan) from the checked-in corpora: FUZZ_SECONDS each (default 60).
fuzz: deps
	@bash scripts/fuzz.sh

bench: build
	@bash bench/run.sh

bench-tracking: build
	@bash bench/tracking.sh

# 10,000 idle keep-alive connections: the server's RSS and a normal request's latency beside them.
bench-http: build
	@/usr/bin/python3 bench/idle_connections.py

bench-sweep: build
	@build/sweep_bench

# The scheduling policy over a 10,000-job trace on 32 GPUs: FIFO against fair share, in one run.
bench-sched: build
	@build/sched_sim

# Slurm and distributed start-up, against a real test Slurm cluster (root), in a private network namespace.
# The studio in a real headless Chromium: 10,000 jobs, a 1M-point metric, a 20-run compare, live logs.
bench-studio: build
	@/usr/bin/python3 bench/studio.py

bench-data: build
	@/usr/bin/python3 bench/data.py

bench-gpu: build
	@/usr/bin/python3 bench/gpu_bench.py

bench-pipeline: build
	@/usr/bin/python3 bench/pipeline_bench.py

bench-distributed: build
	@tests/e2e/isolated.sh /usr/bin/python3 bench/distributed.py
	@/usr/bin/python3 bench/sweep_bench.py

clean:
	rm -rf $(BUILD)
