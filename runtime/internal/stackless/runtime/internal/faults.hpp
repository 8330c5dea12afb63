// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/faults.hpp — fault injection for the tests: make the runtime's
// requests for resources fail the way the kernel fails them when the process runs out.
//
// The error paths of a stack that cannot be mapped or a worker thread that cannot start are
// tested for real under RLIMIT_AS in the debug build. The sanitizers' shadow memory needs
// terabytes of address space, so there no limit can be set; these hooks reach the same paths
// (the same errno, thrown from the same place), so the ASan and TSan builds check them for leaks
// and races too. Disarmed (the only state outside the tests) a hook costs one relaxed load, on
// paths that already make a system call.
#pragma once

namespace stackless::detail {

enum class fault : unsigned {
  stack_map,     // mmap of a stack or a slab of stacks: ENOMEM (stack.cpp)
  thread_start,  // a worker thread: EAGAIN, as from pthread_create (lifecycle.cpp)
  count_
};

/// arm_fault(): of the next operations of kind `f`, let `pass` succeed, then fail `fail` of them
/// (-1: every one until disarmed); arm_fault(f, 0, 0) disarms. Process-wide; any thread.
void arm_fault(fault f, int pass, int fail) noexcept;

/// fault_now() is true when this operation of kind `f` must fail (and counts it).
bool fault_now(fault f) noexcept;

}  // namespace stackless::detail
