// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_address.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

struct sd_event;
struct sd_event_source;
struct udev;
struct udev_monitor;

namespace gpuswap {

struct UdevEvent {
    std::string action;     // add, remove, bind, unbind, change
    std::string subsystem;  // pci, drm, sound
    std::string devpath;    // /devices/pci0000:00/0000:00:01.0/0000:03:00.0/drm/card1
    std::string driver;     // DRIVER= of the event; unbind events carry none
    // The PCI function the event is about: the device itself, or the parent of a
    // DRM or sound node.
    std::optional<PciAddress> pciAddress;
};

// The nearest PCI function in a devpath, from the leaf up. Works for remove events,
// whose sysfs directory is already gone.
std::optional<PciAddress> pciAddressInDevpath(const std::string& devpath);

// udev's processed events for pci, drm, sound and drivers (a PCI driver registering:
// "add" of /bus/pci/drivers/NAME), delivered on the sd-event loop.
class UdevWatch {
public:
    using Handler = std::function<void(const UdevEvent&)>;

    UdevWatch(sd_event* event, Handler handler);
    ~UdevWatch();
    UdevWatch(const UdevWatch&) = delete;
    UdevWatch& operator=(const UdevWatch&) = delete;

private:
    static int onReadable(sd_event_source* source, int fd, uint32_t revents, void* userdata);
    void drain();

    Handler handler_;
    udev* udev_ = nullptr;
    udev_monitor* monitor_ = nullptr;
    sd_event_source* source_ = nullptr;
};

} // namespace gpuswap
