// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_address.hpp"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gpuswap {

enum class DisplayManagerPolicy { Restart, Keep, Stop };
enum class HolderPolicy { Wait, Ignore };

struct Timeouts {
    std::chrono::milliseconds unit{30000};
    std::chrono::milliseconds bind{10000};
    std::chrono::milliseconds holders{10000};
    bool operator==(const Timeouts&) const = default;
};

struct VmProfile {
    std::string name{};
    // Empty: the devices come from the domain XML at PrepareVM.
    std::vector<PciAddress> devices{};
    // address -> BAR index -> size in bytes, applied while the device is on vfio-pci.
    std::map<PciAddress, std::map<unsigned, uint64_t>> bars{};
    DisplayManagerPolicy displayManager = DisplayManagerPolicy::Restart;
    HolderPolicy holders = HolderPolicy::Wait;
    // Units stopped (if they run) before anything else and started at release, e.g.
    // nvidia-persistenced.service, which keeps /dev/nvidiaN open.
    std::vector<std::string> stopUnits{};
    bool operator==(const VmProfile&) const = default;
};

struct Config {
    std::string displayManagerUnit = "display-manager.service";
    Timeouts timeouts;
    std::map<std::string, VmProfile> vms;
    bool operator==(const Config&) const = default;
};

// Says which file, which key path (or line and column) and what is wrong.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Strict: unknown keys, duplicate keys, wrong types and malformed values are errors.
Config parseConfig(std::string_view text, const std::string& fileName);
// One VM's profile given as the JSON object a "vms" entry holds, checked by the same rules
// and with the same messages; `origin` starts each message (where the profile came from).
VmProfile parseVmProfile(const nlohmann::json& profile, const std::string& vmName, const std::string& origin);
// A missing file is an empty configuration (no profiles); any other read error throws.
Config loadConfig(const std::filesystem::path& path);
// As loadConfig, but a missing file is an error too (check-config).
Config readConfigFile(const std::filesystem::path& path);

// VM names as libvirt accepts them, limited to what the daemon stores: 1-255 bytes,
// no '/', no control characters.
bool isValidVmName(std::string_view name);
// systemd unit names: [A-Za-z0-9:_.\\@-], a known type suffix, at most 255 bytes.
bool isValidUnitName(std::string_view name);

} // namespace gpuswap
