// <stackless/sync.hpp> — channels and synchronisation for tasklets. Not built yet (issues 4, 5):
// this header exists so that code can already include it.
#pragma once
#include "stackless/runtime.hpp"
