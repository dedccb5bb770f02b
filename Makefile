# The two commands of the README, and a few conveniences.
#   make run   - install what is missing, build, start a private redis-server
#                and the gateway (http://localhost:8080/)
#   make test  - install what is missing, build with ASan+UBSan, run every test
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test deps build build-test build-fuzz fuzz soak clean

deps:
	@bash .ci/deps.sh

build: deps
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATGATE_TESTS=OFF >/dev/null
	@cmake --build build/release -j$(JOBS)

run: build
	@bash docker/run-local.sh build/release/gateway/chatgate

build-test: deps
	@cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DCHATGATE_SANITIZE=ON -DCHATGATE_WERROR=ON >/dev/null
	@cmake --build build/test -j$(JOBS)

build-fuzz: deps
	@CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHATGATE_FUZZ=ON -DCHATGATE_WERROR=ON >/dev/null
	@cmake --build build/fuzz -j$(JOBS)

test: build-test build-fuzz
	cd build/test && ctest --output-on-failure -j$(JOBS)
	cd build/fuzz && ctest --output-on-failure -j$(JOBS) -L fuzz

# Long forms of the reliability tests by hand (tests/reliability, CHATGATE_SOAK=1).
soak: build-test
	bash tests/reliability/soak.sh build/test

# Long-form fuzzing by hand: FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 600
fuzz: deps
	@CC=clang cmake -S . -B build/fuzz -DCHATGATE_FUZZ=ON -DCHATGATE_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build build/fuzz -j$(JOBS)
	cd build/fuzz && ctest --output-on-failure -L fuzz

clean:
	rm -rf build
