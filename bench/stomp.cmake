# bench_stomp_parse: libstomp parse and write throughput on chat-sized
# frames (bench/stomp_parse_bench.c). Included by bench/CMakeLists.txt.
# Run it from a build without sanitizers:
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DCHATGATE_TESTS=OFF
#   cmake --build build/release --target bench_stomp_parse
#   build/release/bench/bench_stomp_parse [seconds per measurement]
add_executable(bench_stomp_parse ${CMAKE_CURRENT_LIST_DIR}/stomp_parse_bench.c)
target_link_libraries(bench_stomp_parse PRIVATE stomp)
