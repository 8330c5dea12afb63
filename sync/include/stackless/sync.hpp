// <stackless/sync.hpp> — channels, select() and (issue 5) tasklet-aware synchronisation.
#pragma once
#include "stackless/runtime.hpp"
#include "stackless/sync/channel.hpp"
