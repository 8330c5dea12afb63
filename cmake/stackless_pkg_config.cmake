# SPDX-License-Identifier: Apache-2.0
# stackless_pkg_config(<output>) writes stackless.pc for the install tree: everything (the
# stackless::stackless target's worth), for users who build without CMake.
#
# - Relocatable: prefix is ${pcfiledir}/<up to the prefix>, so `cmake --install --prefix X`
#   (any X, chosen at install time) yields a correct file. An absolute CMAKE_INSTALL_LIBDIR or
#   INCLUDEDIR is written as it is.
# - Static libraries (the default) need Boost.Context and the thread library at the consumer's
#   link, so they are in Libs; shared ones link them themselves (Libs.private, for --static).
# - moodycamel's ConcurrentQueue is not listed: no installed header includes it.
function(stackless_pkg_config output)
  file(RELATIVE_PATH up "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" up "${up}")
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(STACKLESS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    set(STACKLESS_PC_PREFIX "\${pcfiledir}/${up}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(STACKLESS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  else()
    set(STACKLESS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(STACKLESS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  else()
    set(STACKLESS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()
  # Boost.Context by directory and name (the directory from the imported target, resolved at
  # generate time); pkg-config drops -L of the system's library directories.
  set(deps "-L$<TARGET_LINKER_FILE_DIR:Boost::context> -lboost_context -pthread")
  if(BUILD_SHARED_LIBS)
    set(STACKLESS_PC_KIND shared)
    set(STACKLESS_PC_LIBS "-pthread")
    set(STACKLESS_PC_LIBS_PRIVATE "${deps}")
  else()
    set(STACKLESS_PC_KIND static)
    set(STACKLESS_PC_LIBS "${deps}")
    set(STACKLESS_PC_LIBS_PRIVATE "")
  endif()
  # The runtime's users get -fstack-clash-protection (runtime/CMakeLists.txt says why).
  if(STACKLESS_HAVE_STACK_CLASH_PROTECTION)
    set(STACKLESS_PC_CFLAGS " -fstack-clash-protection")
  else()
    set(STACKLESS_PC_CFLAGS "")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/stackless.pc.in ${output}.in @ONLY)
  file(GENERATE OUTPUT ${output} INPUT ${output}.in)
endfunction()
