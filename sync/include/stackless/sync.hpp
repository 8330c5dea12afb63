// SPDX-License-Identifier: Apache-2.0
// <stackless/sync.hpp> — channels, select(), and the tasklet-aware synchronisation of
// stacklesslib: locks, condition variables, semaphores, events, latches, wait groups, barriers,
// promises and futures, when_any / when_all, task_group. timeout_scope and tasklet_local come
// with <stackless/runtime.hpp>.
#pragma once
#include "stackless/runtime.hpp"
#include "stackless/sync/channel.hpp"
#include "stackless/sync/condition_variable.hpp"
#include "stackless/sync/event.hpp"
#include "stackless/sync/future.hpp"
#include "stackless/sync/mutex.hpp"
#include "stackless/sync/semaphore.hpp"
#include "stackless/sync/task_group.hpp"
