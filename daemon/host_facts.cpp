// SPDX-License-Identifier: GPL-2.0-or-later
#include "diagnosis.hpp"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace gpuswap {

namespace fs = std::filesystem;

namespace {

// "1002:73bf,1002:ab28" (entries may carry ":subvendor:subdevice")
void parseIds(const std::string& list, std::vector<std::pair<uint16_t, uint16_t>>& ids)
{
    std::istringstream entries(list);
    std::string entry;
    while (std::getline(entries, entry, ',')) {
        unsigned vendor = 0;
        unsigned device = 0;
        if (std::sscanf(entry.c_str(), "%x:%x", &vendor, &device) == 2)
            ids.emplace_back(static_cast<uint16_t>(vendor), static_cast<uint16_t>(device));
    }
}

// vfio-pci.ids= on the kernel command line, "options vfio-pci ids=" in modprobe.d.
void gatherVfioIds(const HostPaths& paths, HostFacts& host)
{
    std::istringstream words(host.kernelCommandLine);
    std::string word;
    while (words >> word)
        for (const char* key : {"vfio-pci.ids=", "vfio_pci.ids="})
            if (word.starts_with(key)) {
                parseIds(word.substr(std::string(key).size()), host.vfioIds);
                host.vfioIdsSource = "the kernel command line";
            }
    for (const fs::path& directory : paths.modprobeDirs) {
        std::error_code error;
        for (const auto& file : fs::directory_iterator(directory, error)) {
            if (file.path().extension() != ".conf")
                continue;
            std::ifstream conf(file.path());
            std::string line;
            while (std::getline(conf, line)) {
                std::istringstream fields(line);
                std::string keyword;
                std::string module;
                fields >> keyword >> module;
                if (keyword != "options" || (module != "vfio-pci" && module != "vfio_pci"))
                    continue;
                std::string option;
                while (fields >> option)
                    if (option.starts_with("ids=")) {
                        parseIds(option.substr(4), host.vfioIds);
                        host.vfioIdsSource = file.path().string();
                    }
            }
        }
    }
}

void gatherLibvirtHooks(const HostPaths& paths, HostFacts& host)
{
    std::error_code error;
    host.hookLink = paths.hookLink.string();
    host.hookInstalled = !paths.hookLink.empty() && fs::exists(paths.hookLink, error);
    host.hookExecutable = host.hookInstalled && ::access(paths.hookLink.c_str(), X_OK) == 0;
    host.oldDispatcher = fs::exists(paths.libvirtHooks / "qemu", error);
    // The layout of the hook helper scripts people used before: qemu.d/<vm>/<op>/<phase>/*.
    for (const auto& entry : fs::directory_iterator(paths.libvirtHooks / "qemu.d", error)) {
        if (!entry.is_directory(error))
            continue;
        std::vector<std::string> scripts;
        for (const auto& file : fs::recursive_directory_iterator(entry.path(), error))
            if (file.is_regular_file(error))
                scripts.push_back(file.path().string());
        std::sort(scripts.begin(), scripts.end());
        host.vmHookScripts[entry.path().filename().string()] = std::move(scripts);
    }
}

// When a process started, in seconds since the epoch: /proc/PID/stat field 22 counts
// clock ticks since boot, /proc/stat's btime is the boot.
std::optional<double> processStart(const fs::path& proc, pid_t pid)
{
    std::ifstream statFile(proc / std::to_string(pid) / "stat");
    std::string stat;
    std::getline(statFile, stat);
    const auto afterName = stat.rfind(')');  // the command may hold spaces and parentheses
    if (afterName == std::string::npos)
        return std::nullopt;
    std::istringstream fields(stat.substr(afterName + 2));
    std::string field;
    unsigned long long ticks = 0;
    for (int index = 3; index <= 22 && fields >> field; ++index)
        if (index == 22)
            ticks = std::stoull(field);
    std::ifstream systemStat(proc / "stat");
    std::string line;
    while (std::getline(systemStat, line))
        if (line.starts_with("btime "))
            return std::stod(line.substr(6)) + static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
    return std::nullopt;
}

void checkLibvirtStart(const HostPaths& paths, HostFacts& host)
{
    struct stat hook {};
    if (paths.hookLink.empty() || ::lstat(paths.hookLink.c_str(), &hook) != 0)
        return;
    for (const fs::path& pidFile : paths.libvirtPidFiles) {
        const std::string pidText = readAttribute(pidFile).value_or("");
        if (pidText.empty() || pidText.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const auto started = processStart(paths.proc, static_cast<pid_t>(std::stol(pidText)));
        if (started && *started < static_cast<double>(hook.st_mtim.tv_sec))
            host.libvirtStartedBeforeHook = pidFile.stem().string();
    }
}

// vfio-pci as a module of the running kernel, or built into it; nullopt without an index.
std::optional<bool> vfioPciInKernel(const fs::path& modules, const std::string& release)
{
    std::optional<bool> found;
    for (const char* index : {"modules.dep", "modules.builtin"}) {
        std::ifstream file(modules / release / index);
        if (!file)
            continue;
        found = false;
        std::string line;
        while (std::getline(file, line))
            if (line.find("/vfio-pci.ko") != std::string::npos)
                return true;
    }
    return found;
}

// The SONAME link names the installed release (libvirt.so.0 -> libvirt.so.0.9000.0 is 9.0.0):
// one readlink instead of listing a library directory of a thousand entries on every Diagnose.
void findLibvirtVersion(const HostPaths& paths, HostFacts& host)
{
    for (const fs::path& directory : paths.libraryDirs) {
        std::error_code error;
        const fs::path library = fs::read_symlink(directory / "libvirt.so.0", error);
        unsigned combined = 0;
        unsigned micro = 0;
        if (!error && std::sscanf(library.filename().c_str(), "libvirt.so.0.%u.%u", &combined, &micro) == 2) {
            host.libvirtVersion = std::make_tuple(static_cast<int>(combined / 1000), static_cast<int>(combined % 1000),
                                                  static_cast<int>(micro));
            return;
        }
    }
}

} // namespace

// The names only: without CAP_SYS_ADMIN /proc/iomem shows every address as 0.
std::vector<std::string> firmwareFramebuffers(const fs::path& iomem)
{
    static const std::set<std::string> names{"BOOTFB", "efifb", "simplefb", "vesafb"};
    std::vector<std::string> found;
    std::ifstream file(iomem);
    std::string line;
    while (std::getline(file, line)) {
        const auto colon = line.find(" : ");
        if (colon == std::string::npos)
            continue;
        const std::string name = line.substr(colon + 3);
        if (names.contains(name) && std::find(found.begin(), found.end(), name) == found.end())
            found.push_back(name);
    }
    return found;
}

std::set<std::string> runningCompositors(const fs::path& proc)
{
    std::set<std::string> found;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(proc, error)) {
        const std::string pid = entry.path().filename().string();
        if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const std::string comm = readAttribute(entry.path() / "comm").value_or("");
        if (compositorCase(comm) != nullptr)
            found.insert(comm);
    }
    return found;
}

HostFacts gatherHostFacts(const Sysfs& sysfs, const HostPaths& paths, const std::optional<std::set<PciAddress>>& devices)
{
    HostFacts host;
    host.iommuGroupsPresent = sysfs.hasIommuGroups();
    host.vfioPciLoaded = sysfs.hasDriver("vfio-pci");
    if (!devices) {
        host.devices = sysfs.readAllDevices();
    } else {
        std::map<PciAddress, PciDevice> read;
        std::set<int> groups;
        for (const PciAddress& address : *devices)
            if (auto device = sysfs.readDevice(address)) {
                if (device->iommuGroup >= 0)
                    groups.insert(device->iommuGroup);
                read.emplace(address, std::move(*device));
            }
        for (int group : groups)
            for (const PciAddress& member : sysfs.iommuGroupMembers(group))
                if (!read.contains(member))
                    if (auto device = sysfs.readDevice(member))
                        read.emplace(member, std::move(*device));
        for (auto& [address, device] : read)
            host.devices.push_back(std::move(device));
    }
    for (const PciDevice& device : host.devices) {
        const std::string method = readAttribute(sysfs.devicePath(device.address) / "reset_method").value_or("");
        if (!method.empty())
            host.resetMethods.emplace(device.address, method);
    }
    host.kernelCommandLine = readAttribute(paths.kernelCommandLine).value_or("");
    utsname system{};
    if (uname(&system) == 0)
        host.kernelRelease = system.release;
    host.vfioPciAvailable = host.vfioPciLoaded ? std::optional<bool>(true) : vfioPciInKernel(paths.modules, host.kernelRelease);
    std::error_code error;
    host.vendorResetLoaded = fs::exists(sysfs.root() / "module/vendor_reset", error);
    gatherVfioIds(paths, host);
    gatherLibvirtHooks(paths, host);
    checkLibvirtStart(paths, host);
    findLibvirtVersion(paths, host);
    host.compositors = runningCompositors(paths.proc);
    host.firmwareFramebuffers = firmwareFramebuffers(paths.proc / "iomem");
    return host;
}

} // namespace gpuswap
