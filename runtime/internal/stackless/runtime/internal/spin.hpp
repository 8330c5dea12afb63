// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/spin.hpp — cpu_relax() and the spinlock, for the runtime and the
// components built on it (sync, io).
#pragma once

#include "stackless/runtime/detail/spinlock.hpp"
