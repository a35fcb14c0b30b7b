// SPDX-License-Identifier: GPL-2.0-or-later
#include "holders.hpp"

#include "log.hpp"
#include "text.hpp"

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <set>

namespace gpuswap {

namespace fs = std::filesystem;

std::vector<Holder> findHolders(const std::map<dev_t, std::string>& nodes, const fs::path& proc)
{
    std::vector<Holder> holders;
    if (nodes.empty())
        return holders;
    std::error_code error;
    for (const auto& process : fs::directory_iterator(proc, error)) {
        const std::string name = process.path().filename().string();
        pid_t pid = 0;
        if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() || pid == getpid())
            continue;
        std::set<std::string> seen;
        std::error_code fdError;
        for (const auto& fd : fs::directory_iterator(process.path() / "fd", fdError)) {
            struct stat st {};
            if (::stat(fd.path().c_str(), &st) != 0 || !S_ISCHR(st.st_mode))
                continue;
            const auto node = nodes.find(st.st_rdev);
            if (node == nodes.end() || !seen.insert(node->second).second)
                continue;
            // Any user names its own processes (prctl PR_SET_NAME): not trusted as text.
            std::string command;
            std::getline(std::ifstream(process.path() / "comm"), command);
            holders.push_back({pid, escapeText(command), escapeText(node->second)});
        }
    }
    std::sort(holders.begin(), holders.end(), [](const Holder& a, const Holder& b) {
        return a.pid != b.pid ? a.pid < b.pid : a.node < b.node;
    });
    return holders;
}

std::string describeHolders(const std::vector<Holder>& holders)
{
    std::string text;
    for (const Holder& holder : holders)
        text += (text.empty() ? "" : ", ") + std::to_string(holder.pid) + " (" + holder.command + ") holds " + holder.node;
    return text;
}

dev_t nodeNumber(const fs::path& node)
{
    struct stat status {};
    if (node.empty() || ::stat(node.c_str(), &status) != 0 || !S_ISCHR(status.st_mode))
        return 0;
    return status.st_rdev;
}

dev_t readDeviceNumber(const fs::path& devAttribute)
{
    std::ifstream file(devAttribute);
    unsigned major = 0;
    unsigned minor = 0;
    char colon = 0;
    if (!(file >> major >> colon >> minor) || colon != ':')
        return 0;
    return makedev(major, minor);
}

DeviceNodes deviceNodes(const fs::path& device)
{
    DeviceNodes nodes;
    std::error_code error;
    for (const auto& node : fs::directory_iterator(device / "drm", error))
        if (const dev_t number = readDeviceNumber(node.path() / "dev"))
            nodes.drm[number] = "/dev/dri/" + node.path().filename().string();
    for (const auto& card : fs::directory_iterator(device / "sound", error))
        for (const auto& node : fs::directory_iterator(card.path(), error))
            if (const dev_t number = readDeviceNumber(node.path() / "dev"))
                nodes.sound[number] = "/dev/snd/" + node.path().filename().string();
    return nodes;
}

HolderWait::HolderWait(sd_event* event, std::map<dev_t, std::string> nodes, Done done)
    : event_(event), nodes_(std::move(nodes)), done_(std::move(done))
{
    rescan();
}

HolderWait::~HolderWait()
{
    clearWatches();
    sd_event_source_disable_unref(retry_);
}

void HolderWait::clearWatches()
{
    for (auto& [fd, source] : watches_) {
        sd_event_source_disable_unref(source);
        ::close(fd);
    }
    watches_.clear();
}

void HolderWait::rescan()
{
    sd_event_source_disable_unref(retry_);
    retry_ = nullptr;
    // A holder that exits between the scan and pidfd_open is simply looked for again; the
    // bound only guards against a process table that keeps changing under the scan.
    for (int attempt = 0; attempt < 16; ++attempt) {
        clearWatches();
        holders_ = findHolders(nodes_);
        if (holders_.empty()) {
            // Moved out first: done_ may destroy this object.
            auto done = std::move(done_);
            done();
            return;
        }
        bool exited = false;
        bool unwatchable = false;
        std::set<pid_t> watched;
        for (const Holder& holder : holders_) {
            if (!watched.insert(holder.pid).second)
                continue;
            // glibc 2.36's <sys/pidfd.h> lacks C linkage for C++: the system call itself.
            const int fd = static_cast<int>(::syscall(SYS_pidfd_open, holder.pid, 0));
            if (fd < 0) {
                (errno == ESRCH ? exited : unwatchable) = true;
                continue;
            }
            sd_event_source* source = nullptr;
            if (sd_event_add_io(event_, &source, fd, EPOLLIN, &HolderWait::onExit, this) < 0) {
                ::close(fd);
                unwatchable = true;
                continue;
            }
            watches_.emplace_back(fd, source);
        }
        if (unwatchable) {
            // Out of descriptors or memory: look again shortly rather than spin.
            log::warning("cannot watch every holder of the device nodes; looking again in 100 ms");
            sd_event_add_time_relative(event_, &retry_, CLOCK_MONOTONIC, 100'000, 0,
                                       [](sd_event_source*, uint64_t, void* userdata) -> int {
                                           static_cast<HolderWait*>(userdata)->rescan();
                                           return 0;
                                       },
                                       this);
            return;
        }
        if (!exited)
            return;
    }
}

int HolderWait::onExit(sd_event_source*, int, uint32_t, void* userdata)
{
    static_cast<HolderWait*>(userdata)->rescan();
    return 0;
}

} // namespace gpuswap
