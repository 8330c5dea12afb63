# SPDX-License-Identifier: Apache-2.0
# stackless_check_layering(component_dir): refuses (at configure time) a source of a component
# built on the runtime (sync, io, …) that includes a header of runtime/src by name or by a
# relative path. runtime/src is already off those components' include paths, so a plain
# #include "scheduler_impl.hpp" does not compile; this also catches "../../runtime/src/…".
# What a component needs of the runtime's insides is the internal interface
# (runtime/internal/stackless/runtime/internal/*.hpp, target stackless_runtime_internal).
function(stackless_check_layering component_dir)
  file(GLOB runtime_private RELATIVE ${PROJECT_SOURCE_DIR}/runtime/src
       ${PROJECT_SOURCE_DIR}/runtime/src/*.hpp)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${component_dir}/*.cpp ${component_dir}/*.hpp)
  foreach(src IN LISTS sources)
    file(STRINGS ${src} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" inc "${line}")
      get_filename_component(inc_name ${inc} NAME)
      get_filename_component(src_dir ${src} DIRECTORY)
      set(local ${src_dir}/${inc})
      if(inc MATCHES "runtime/src/" OR (inc_name IN_LIST runtime_private AND NOT EXISTS ${local}))
        message(FATAL_ERROR "stackless: layering: ${src} includes \"${inc}\", a private header "
                            "of runtime/src. Components see the runtime only through its public "
                            "headers and stackless/runtime/internal/*.hpp.")
      endif()
    endforeach()
  endforeach()
endfunction()
