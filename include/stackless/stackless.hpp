// SPDX-License-Identifier: Apache-2.0
// <stackless/stackless.hpp> — everything.
#pragma once
#include "stackless/io.hpp"
#include "stackless/runtime.hpp"
#include "stackless/sync.hpp"
#include "stackless/sync/parallel.hpp"  // parallel_for, parallel_reduce, map_reduce
