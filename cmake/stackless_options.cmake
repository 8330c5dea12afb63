# SPDX-License-Identifier: Apache-2.0
# Warning flags and sanitizer wiring shared by every target of the project.
add_library(stackless_warnings INTERFACE)
target_compile_options(stackless_warnings INTERFACE -Wall -Wextra
  $<$<BOOL:${STACKLESS_WERROR}>:-Werror>)

if(STACKLESS_SANITIZER STREQUAL "address")
  add_compile_options(-fsanitize=address -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address)
  # The context switch annotates fibers for ASan; without it ASan reports
  # false stack-use-after-return on every switch. context.cpp refuses to build
  # under ASan unless this is defined.
  add_compile_definitions(STACKLESS_FIBER_ANNOTATIONS=1 STACKLESS_SANITIZED=1)
elseif(STACKLESS_SANITIZER STREQUAL "thread")
  add_compile_options(-fsanitize=thread)
  add_link_options(-fsanitize=thread)
  add_compile_definitions(STACKLESS_FIBER_ANNOTATIONS=1 STACKLESS_SANITIZED=1 STACKLESS_TSAN=1)
elseif(STACKLESS_SANITIZER STREQUAL "undefined")
  add_compile_options(-fsanitize=undefined -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=undefined)
  add_compile_definitions(STACKLESS_SANITIZED=1)
elseif(NOT STACKLESS_SANITIZER STREQUAL "")
  message(FATAL_ERROR "STACKLESS_SANITIZER must be address, thread or undefined, not '${STACKLESS_SANITIZER}'")
endif()

# STACKLESS_FRAME_POINTERS: every frame keeps the frame pointer (-fno-omit-frame-pointer, and in
# leaf functions too), so scheduler::dump() can walk a parked tasklet's saved stack
# (runtime/src/dump.cpp) — as Go always does. On by default where debugging is the point (Debug
# and the sanitizer builds); an optimized build keeps the register (measure before turning it on
# there). The user's own code needs the same flags for its frames to appear.
if(STACKLESS_SANITIZER OR CMAKE_BUILD_TYPE STREQUAL "Debug")
  set(stackless_fp_default ON)
else()
  set(stackless_fp_default OFF)
endif()
option(STACKLESS_FRAME_POINTERS "Keep frame pointers (scheduler::dump() backtraces)"
  ${stackless_fp_default})
if(STACKLESS_FRAME_POINTERS)
  add_compile_options(-fno-omit-frame-pointer
    $<$<COMPILE_LANG_AND_ID:CXX,GNU,Clang>:-mno-omit-leaf-frame-pointer>)
endif()

# stackless_runtime_text(target): after the static library is archived, its objects' plain
# `.text` (and `.text.unlikely`) — the code our .cpp files define, not the templates and inline
# functions that headers instantiate in the user's objects — is renamed `stackless_text`
# (`stackless_text_cold`). The linker gathers each into one range bounded by
# __start_/__stop_ symbols; the hard-preemption handler refuses to interrupt a PC inside them
# (runtime/src/preempt.cpp). Without objcopy the handler refuses everywhere (safe, visible in
# stats().refused_runtime_code).
#
# A shared library (BUILD_SHARED_LIBS) is not renamed: objcopy on a linked .so changes a name in
# the section table and nothing else — no __start_/__stop_ symbols exist after the link. It needs
# no renaming either: the user's code (tasklet bodies, the header templates they instantiate) is
# never inside our .so, so the whole object is runtime code, and preempt.cpp, finding no
# stackless_text, counts every executable segment of the object that holds it. The handler must
# also count libstackless_sync.so (the channel's spin states, the wait queues' spinlocks), which
# is a separate object: preempt.cpp's runtime_library() has to match "/libstackless_" by name.
# With that, a shared build refuses hard preemption in all of our code, as a static build does.
function(stackless_runtime_text target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "STATIC_LIBRARY" AND CMAKE_OBJCOPY AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
    add_custom_command(TARGET ${target} POST_BUILD
      COMMAND ${CMAKE_OBJCOPY} --rename-section .text=stackless_text
                               --rename-section .text.unlikely=stackless_text_cold
                               $<TARGET_FILE:${target}>
      VERBATIM)
  endif()
endfunction()
