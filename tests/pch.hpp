// SPDX-License-Identifier: Apache-2.0
// tests/pch.hpp — the precompiled header of the GoogleTest programs (stackless_gtest() in
// tests/CMakeLists.txt): GoogleTest and the standard headers nearly every test includes. Only
// headers that are the same for every test binary belong here (no stackless header: the
// binaries see different parts of the tree). Every test still includes what it uses; this only
// saves parsing them ~60 times per build mode (about 2 s of CPU per test source under ASan).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>
