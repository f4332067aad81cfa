#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (Debian's clang-14) under AddressSanitizer and UBSan: builds the
# targets in fuzz/ and runs each for FUZZ_SECONDS (default 60) from its checked-in corpus in fuzz/corpus/.
# New inputs found are kept in a scratch folder, not the corpus; a crash leaves its input in build-fuzz/
# and fails the run (turn it into a regression test, then add it to the corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAIRN_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
targets=(http_request json_bodies job_yaml set_override jmespath id_token cli_answer)
cmake --build build-fuzz --target "${targets[@]/%/_fuzz}"
status=0
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  echo "fuzz: $t for ${seconds}s" >&2
  if ! (cd build-fuzz && ASAN_OPTIONS=detect_leaks=0 "./${t}_fuzz" -max_total_time="$seconds" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$scratch" "../fuzz/corpus/$t" 2>&1 | tail -15); then
    echo "fuzz: $t FAILED" >&2
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
