// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "pci_device.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace gpuswap {

struct DaemonOptions {
    std::filesystem::path configPath = "/etc/gpuswap/gpuswapd.json";
    std::filesystem::path stateDir = "/run/gpuswapd";
    // Empty: the system bus.
    std::string busAddress;
};

inline constexpr const char* kBusName = "org.gpuswap1";

// Runs gpuswapd until SIGTERM/SIGINT: one sd-event loop for the bus, udev, signals
// and the watchdog. Returns the process exit code.
int runDaemon(const DaemonOptions& options, Config config);

} // namespace gpuswap
