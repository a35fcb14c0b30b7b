// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>

// Logging: to the journal with structured GPUSWAP_* fields when stderr is connected to
// it (systemd sets JOURNAL_STREAM), to stderr through spdlog otherwise.
namespace gpuswap::log {

enum class Level { Debug, Info, Warning, Error };

// Field names without prefix, e.g. {"DEVICE", "0000:03:00.0"} -> GPUSWAP_DEVICE=.
using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

std::optional<Level> parseLevel(std::string_view name);
void setup(Level threshold);

void write(Level level, std::string_view message, Fields fields = {});
inline void debug(std::string_view message, Fields fields = {}) { write(Level::Debug, message, fields); }
inline void info(std::string_view message, Fields fields = {}) { write(Level::Info, message, fields); }
inline void warning(std::string_view message, Fields fields = {}) { write(Level::Warning, message, fields); }
inline void error(std::string_view message, Fields fields = {}) { write(Level::Error, message, fields); }

} // namespace gpuswap::log
