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

// The journal's MESSAGE_ID of an operation's start, success and failure; the catalog
// (systemd/gpuswapd.catalog) explains each. Passed as a field {"MESSAGE_ID", id}.
inline constexpr std::string_view kOperationStarted = "22828cc8c2274f14b728ae6067d5783d";
inline constexpr std::string_view kOperationSucceeded = "eb8cc69534be4841a7d6fcc16ae5d629";
inline constexpr std::string_view kOperationFailed = "dc4fb2cd579a47cf9a6cf04b8b7345ab";

std::optional<Level> parseLevel(std::string_view name);
void setup(Level threshold);

// While an operation runs every line carries GPUSWAP_OPERATION, GPUSWAP_VM (prepare and
// release) or GPUSWAP_DEVICE (rebind, resize) and, inside a step, GPUSWAP_STEP, so that
// `journalctl GPUSWAP_VM=win11` finds all of it. A line naming its own OPERATION (a call
// waiting for its turn) keeps its own.
void beginOperation(std::string_view operation);
void setStep(unsigned step);  // 0: between steps
void endOperation();

void write(Level level, std::string_view message, Fields fields = {});
inline void debug(std::string_view message, Fields fields = {}) { write(Level::Debug, message, fields); }
inline void info(std::string_view message, Fields fields = {}) { write(Level::Info, message, fields); }
inline void warning(std::string_view message, Fields fields = {}) { write(Level::Warning, message, fields); }
inline void error(std::string_view message, Fields fields = {}) { write(Level::Error, message, fields); }

} // namespace gpuswap::log
