// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

struct Holder {
    pid_t pid = 0;
    std::string command;  // /proc/PID/comm
    std::string node;     // the device node it holds, as the caller named it
    bool operator==(const Holder&) const = default;
};

// Processes with an open file on one of the device numbers (st_rdev, never the path:
// a node can be reached under many names). `nodes` maps a device number to its name.
std::vector<Holder> findHolders(const std::map<dev_t, std::string>& nodes, const std::filesystem::path& proc = "/proc");

// "1234 (Xorg) holds /dev/dri/card1, 1250 (pipewire) holds /dev/snd/controlC1"
std::string describeHolders(const std::vector<Holder>& holders);

// The device number of a character device node ("/dev/nvidia0"); 0 when there is none.
dev_t nodeNumber(const std::filesystem::path& node);

// The device number in a sysfs "dev" attribute ("226:1"); 0 when unreadable.
dev_t readDeviceNumber(const std::filesystem::path& devAttribute);

// A PCI function's device nodes by number: its DRM nodes (/dev/dri/...) and its sound
// nodes (/dev/snd/...), from the sysfs directory of the function.
struct DeviceNodes {
    std::map<dev_t, std::string> drm;
    std::map<dev_t, std::string> sound;
};
DeviceNodes deviceNodes(const std::filesystem::path& device);

// Waits, on the event loop, until none of the nodes is held: each holder's exit is an
// event (pidfd); after every exit the holders are looked up again, as new ones may come.
class HolderWait {
public:
    using Done = std::function<void()>;

    HolderWait(sd_event* event, std::map<dev_t, std::string> nodes, Done done);
    ~HolderWait();
    HolderWait(const HolderWait&) = delete;
    HolderWait& operator=(const HolderWait&) = delete;

    const std::vector<Holder>& holders() const { return holders_; }

private:
    static int onExit(sd_event_source* source, int fd, uint32_t revents, void* userdata);
    void rescan();
    void clearWatches();

    sd_event* event_;
    std::map<dev_t, std::string> nodes_;
    Done done_;
    std::vector<Holder> holders_;
    std::vector<std::pair<int, sd_event_source*>> watches_;
    sd_event_source* retry_ = nullptr;
};

} // namespace gpuswap
