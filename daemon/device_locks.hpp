// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_address.hpp"

#include <map>

namespace gpuswap {

// The PCI devices whose kernel device lock a write of ours may hold or wait for. The
// kernel takes that lock for bind, unbind, drivers_probe, resourceN_resize and
// driver_override writes (drivers/base/bus.c, drivers/base/dd.c, drivers/pci/pci-sysfs.c)
// and also to *read* driver_override (driver_override_show): such a read blocks as long
// as the write does, forever on a wedged device. Readers ask here first.
class DeviceLocks {
public:
    void acquire(const PciAddress& device) { ++held_[device]; }
    void release(const PciAddress& device)
    {
        const auto it = held_.find(device);
        if (it != held_.end() && --it->second == 0)
            held_.erase(it);
    }
    bool held(const PciAddress& device) const { return held_.contains(device); }

private:
    std::map<PciAddress, unsigned> held_;
};

} // namespace gpuswap
