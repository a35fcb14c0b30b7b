// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "device_locks.hpp"
#include "pci_address.hpp"

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <list>
#include <optional>
#include <string>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// Writes sysfs attributes of PCI devices, each in a short-lived child process. A write
// to unbind, bind, drivers_probe or resourceN_resize runs the driver's remove() or
// probe() inside write(): seconds on a real GPU, and some never return (NVIDIA's remove
// while /dev/nvidiaN is open, snd_hda_intel's while a program keeps an ALSA file, a
// wedged GPU). A thread stuck in the kernel would keep this process from exiting and
// hold up whatever queued behind it; a child stuck there delays nothing: the event
// loop learns of its exit through a pidfd, or never.
class SysfsWriter {
public:
    // errno of the open or write, 0 on success; called on the event loop.
    using Done = std::function<void(int error)>;

    // A write that has not returned yet.
    struct InFlight {
        std::filesystem::path path;
        std::string value;
        pid_t pid = 0;
        std::chrono::steady_clock::time_point started;
    };

    SysfsWriter(sd_event* event, DeviceLocks& locks);
    ~SysfsWriter();
    SysfsWriter(const SysfsWriter&) = delete;
    SysfsWriter& operator=(const SysfsWriter&) = delete;

    // O_WRONLY|O_TRUNC and one write(): sysfs takes a value per write call, and a
    // shorter value must not leave stale bytes behind. `device` is the one whose lock
    // the kernel takes for it. Throws std::system_error when no child can be started.
    void write(const std::filesystem::path& path, const std::string& value, const PciAddress& device, Done done);

    // The oldest write to the device that has not returned.
    std::optional<InFlight> inFlight(const PciAddress& device) const;
    // One line for messages: the write, for how long, and where the kernel holds it.
    std::string describe(const PciAddress& device) const;
    // Its caller gave up on the device's writes in flight: when one returns after all,
    // the journal says that the device is usable again.
    void markWedged(const PciAddress& device);

private:
    struct Child {
        PciAddress device;
        InFlight write;
        int pidfd = -1;
        sd_event_source* source = nullptr;
        Done done;
        SysfsWriter* owner = nullptr;
        bool wedged = false;
    };

    static int onExit(sd_event_source* source, int fd, uint32_t revents, void* userdata);

    sd_event* event_;
    DeviceLocks& locks_;
    std::list<Child> children_;  // stable addresses: each is its event source's userdata
};

// What a process waits on in the kernel: the top frames of /proc/PID/stack, else its
// wchan; "" when neither can be read.
std::string kernelWaitOf(pid_t pid);

} // namespace gpuswap
