// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "device_setting.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gpuswap {

using DeviceSettings = std::vector<std::pair<PciAddress, DeviceSetting>>;

// A VM whose devices are on vfio-pci, and what to give them back on release.
struct PreparedVm {
    DeviceSettings original;         // in profile order
    std::string displayManagerUnit;  // "" = the profile keeps the display manager
    std::vector<std::string> leftStopped;  // stopped by the prepare for the VM's lifetime, started at release
    bool operator==(const PreparedVm&) const = default;
};

// The operation in flight: what it set out to do and what a rollback restores.
struct OperationRecord {
    std::string name;                 // "prepare:win11"
    DeviceSettings before;            // every device the operation touches, as it was
    std::vector<std::string> stoppedUnits;  // what it stopped (or is stopping) or must start at its end
    unsigned step = 0;                // the step about to run, 1-based
    bool rollingBack = false;
    bool operator==(const OperationRecord&) const = default;
};

struct DaemonState {
    std::map<std::string, PreparedVm> prepared;
    std::optional<OperationRecord> operation;
    bool operator==(const DaemonState&) const = default;
};

// The daemon's state in STATE_DIR/state.json, replaced atomically (write, fsync,
// rename) before every step, so a crash leaves either the old or the new record.
class Journal {
public:
    explicit Journal(std::filesystem::path directory);

    // Empty state when there is no file yet; throws std::runtime_error on a corrupt file.
    DaemonState load() const;
    void save(const DaemonState& state) const;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path directory_;
    std::filesystem::path path_;
};

} // namespace gpuswap
