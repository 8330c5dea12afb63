// SPDX-License-Identifier: Apache-2.0
// <stackless/io.hpp> — tasklet-aware I/O. Not built yet: this header exists so that code can
// already include it.
#pragma once
#include "stackless/sync.hpp"
