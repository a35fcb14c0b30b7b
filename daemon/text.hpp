// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace gpuswap {

// Text taken from the system (/proc/PID/comm, sysfs names) or from a caller, made safe
// for a message, a D-Bus string (which must be valid UTF-8), a log line or a terminal:
// printable UTF-8 passes; control characters and bytes that are not UTF-8 become \xNN.
// Escaping twice changes nothing (clients escape what the daemon already escaped).
std::string escapeText(std::string_view text);

// At most maxBytes of text, cut at a character boundary of valid UTF-8.
std::string_view utf8Prefix(std::string_view text, size_t maxBytes);

// A duration as people read it in messages: "8 s", "1.5 s", "0.2 s".
std::string secondsText(std::chrono::nanoseconds duration);

} // namespace gpuswap
