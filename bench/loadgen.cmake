# chatgate_loadgen: the load generator (bench/loadgen/*.c): p2p, fanout,
# idle and backlog scenarios against the gateway or RabbitMQ Web-STOMP.
# Included by bench/CMakeLists.txt. See bench/RESULTS.md and README
# "Benchmarks"; bench/run-compare.sh drives it.
pkg_check_modules(LG_LIBUV   REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(LG_HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(LG_CRYPTO  REQUIRED IMPORTED_TARGET libcrypto)

file(GLOB LG_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/loadgen/*.c)
add_executable(chatgate_loadgen ${LG_SOURCES})
target_include_directories(chatgate_loadgen PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${CMAKE_CURRENT_LIST_DIR}/loadgen)
target_link_libraries(chatgate_loadgen PRIVATE stomp PkgConfig::LG_LIBUV
                      PkgConfig::LG_HIREDIS PkgConfig::LG_CRYPTO m)
