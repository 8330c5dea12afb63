// SPDX-License-Identifier: Apache-2.0
// <stackless/io.hpp> — tasklet-aware I/O (stacklesslib's replacements.socket and
// threadpool.call_on_thread): sockets whose waits park only the calling tasklet, the blocking
// pool, positional file I/O, name resolution.
#pragma once
#include "stackless/io/blocking.hpp"
#include "stackless/io/endpoint.hpp"
#include "stackless/io/hooks.hpp"
#include "stackless/io/socket.hpp"
#include "stackless/io/thread.hpp"
#include "stackless/sync.hpp"
