// SPDX-License-Identifier: Apache-2.0
// <stackless/runtime.hpp> — tasklets and the scheduler.
#pragma once
#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/tasklet.hpp"
#include "stackless/runtime/tasklet_local.hpp"
#include "stackless/runtime/this_tasklet.hpp"
#include "stackless/runtime/timeout.hpp"
