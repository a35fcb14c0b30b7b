#pragma once

#include "config.hpp"
#include "pci_device.hpp"

#include <optional>
#include <string>
#include <vector>

namespace gpuswap {

enum class Severity { Error, Warning, Info };

struct Finding {
    Severity severity;
    std::string code;  // stable kebab-case identifier, documented in gpuswapd(8)
    std::string message;
    bool operator==(const Finding&) const = default;
};

std::string severityName(Severity severity);

// What Diagnose reads from the host, gathered before the pure checks run.
struct HostFacts {
    bool iommuGroupsPresent = false;
    bool vfioPciLoaded = false;
    std::vector<PciDevice> devices;
};

HostFacts gatherHostFacts(const Sysfs& sysfs);

// Host checks, plus the profile's when `vm` is given (it must exist in config).
// Most severe first.
std::vector<Finding> diagnose(const Config& config, const HostFacts& host, const VmProfile* vm);

} // namespace gpuswap
