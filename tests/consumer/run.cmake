# SPDX-License-Identifier: Apache-2.0
# Builds tests/consumer/main.cpp against stackless the way a user would, then runs it.
#   MODE=find_package: install this build tree into a prefix, then find_package(stackless).
#   MODE=pkgconfig:    install this build tree into a prefix, then compile with the flags of
#                      `pkg-config --cflags --libs stackless` alone (no CMake on the consumer side).
#   MODE=fetchcontent: FetchContent_Declare(SOURCE_DIR <the repository>) — add_subdirectory
#                      underneath — with BUILD_SHARED_LIBS=ON: checks that the consumer's `all`
#                      builds no test, example or benchmark of ours; then installs that build
#                      (STACKLESS_INSTALL=ON) and runs the find_package and pkg-config consumers
#                      against the shared libraries (the pkg-config one with LD_LIBRARY_PATH, as a
#                      user of a non-system prefix would). One library build covers the shared
#                      package; the static one is this build tree's (the two modes above).
# Arguments: SOURCE_DIR, BUILD_DIR (this build tree), WORK_DIR, MODE, GENERATOR, CXX (the
# compiler, for pkg-config), SHARED (whether BUILD_DIR is a shared build).
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/src)
configure_file(${SOURCE_DIR}/tests/consumer/main.cpp ${WORK_DIR}/src/main.cpp COPYONLY)
configure_file(${SOURCE_DIR}/tests/consumer/CMakeLists.txt.in ${WORK_DIR}/src/CMakeLists.txt COPYONLY)

# run(<what> <command>...): runs the command, fails the test with its output if it fails.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc)
    message(FATAL_ERROR "${what} failed (${MODE}): ${rc}\n${out}")
  endif()
endfunction()

# install_tree(<build dir> <prefix>)
function(install_tree build prefix)
  run("install" ${CMAKE_COMMAND} --install ${build} --prefix ${prefix})
endfunction()

# cmake_consumer(<tag> <cmake args>...): configure, build and run the CMake consumer. No
# CMAKE_BUILD_TYPE (no optimisation, no debug information): the quickest to compile, and
# FetchContent compiles the whole library.
function(cmake_consumer tag)
  set(b ${WORK_DIR}/build-${tag})
  run("configure" ${CMAKE_COMMAND} -S ${WORK_DIR}/src -B ${b} -G ${GENERATOR}
      -DSTACKLESS_SOURCE=${SOURCE_DIR} ${ARGN})
  run("build" ${CMAKE_COMMAND} --build ${b})
  run("the consumer program" ${b}/consumer)
  set(consumer_build ${b} PARENT_SCOPE)
endfunction()

# pkgconfig_consumer(<prefix> <shared>): compile and link with pkg-config's flags alone, run.
function(pkgconfig_consumer prefix shared)
  find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
  file(GLOB_RECURSE pc ${prefix}/*/stackless.pc)
  if(NOT pc)
    message(FATAL_ERROR "no stackless.pc installed under ${prefix}")
  endif()
  get_filename_component(pcdir "${pc}" DIRECTORY)
  # PKG_CONFIG_LIBDIR: only our prefix, so a stackless.pc elsewhere on the system cannot answer.
  set(ENV{PKG_CONFIG_LIBDIR} "${pcdir}")
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs stackless RESULT_VARIABLE rc
                  OUTPUT_VARIABLE flags ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc)
    message(FATAL_ERROR "pkg-config --cflags --libs stackless failed: ${err}")
  endif()
  message(STATUS "pkg-config --cflags --libs stackless: ${flags}")
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run("compile and link" ${CXX} -std=c++20 -O1 ${WORK_DIR}/src/main.cpp -o ${WORK_DIR}/pc-consumer
      ${flags})
  if(shared)
    execute_process(COMMAND ${PKG_CONFIG} --variable=libdir stackless
                    OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(ENV{LD_LIBRARY_PATH} "${libdir}")
  endif()
  run("the consumer program" ${WORK_DIR}/pc-consumer)
endfunction()

if(MODE STREQUAL "find_package")
  install_tree(${BUILD_DIR} ${WORK_DIR}/prefix)
  cmake_consumer(fp -DMODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
elseif(MODE STREQUAL "pkgconfig")
  install_tree(${BUILD_DIR} ${WORK_DIR}/prefix)
  pkgconfig_consumer(${WORK_DIR}/prefix "${SHARED}")
elseif(MODE STREQUAL "fetchcontent")
  cmake_consumer(fc -DMODE=fetchcontent -DBUILD_SHARED_LIBS=ON -DSTACKLESS_INSTALL=ON)
  # Not in the consumer's `all`: tests, examples, benchmarks (they default to top level only).
  file(GLOB_RECURSE ours LIST_DIRECTORIES false ${consumer_build}/_deps/*)
  list(FILTER ours INCLUDE REGEX "/(test_[a-z_]+|stackless_(hello|chain|channels|primitives|preempt|bench))$")
  if(ours)
    message(FATAL_ERROR "a FetchContent consumer built our tests/examples/bench: ${ours}")
  endif()
  install_tree(${consumer_build} ${WORK_DIR}/prefix)
  file(GLOB_RECURSE so ${WORK_DIR}/prefix/*/libstackless_runtime.so.*)
  if(NOT so)
    message(FATAL_ERROR "no libstackless_runtime.so.* installed: BUILD_SHARED_LIBS=ON had no "
                        "effect (an add_library(... STATIC ...) in runtime/ or sync/ overrides it)")
  endif()
  cmake_consumer(shared -DMODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  pkgconfig_consumer(${WORK_DIR}/prefix ON)
else()
  message(FATAL_ERROR "MODE must be find_package, pkgconfig or fetchcontent, not '${MODE}'")
endif()
message(STATUS "consumer (${MODE}) built and ran")
