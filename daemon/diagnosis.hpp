// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "pci_device.hpp"
#include "version.hpp"

#include <filesystem>
#include <map>
#include <set>
#include <optional>
#include <tuple>
#include <utility>
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

// Where the host facts outside sysfs are read; tests point them elsewhere.
struct HostPaths {
    std::filesystem::path kernelCommandLine = "/proc/cmdline";
    std::filesystem::path libvirtHooks = "/etc/libvirt/hooks";
    std::filesystem::path hookLink;  // the installed qemu.d entry of gpuswap-hook
    std::vector<std::filesystem::path> modprobeDirs = {"/etc/modprobe.d", "/usr/lib/modprobe.d"};
    // libvirt's daemons write their pid here: monolithic libvirtd, or modular virtqemud.
    std::vector<std::filesystem::path> libvirtPidFiles = {"/run/libvirt/libvirtd.pid", "/run/libvirt/virtqemud.pid"};
    std::filesystem::path proc = "/proc";
    std::filesystem::path modules = "/lib/modules";
    // Where the link libvirt.so.0 -> libvirt.so.0.<major*1000+minor>.<micro> tells the
    // installed libvirt version: the distribution's library directory (Debian's multiarch
    // one, Fedora's lib64), which is meson's libdir when built with --prefix=/usr.
    std::vector<std::filesystem::path> libraryDirs = {kSystemLibraryDir, "/usr/lib64", "/usr/lib"};
};

// What Diagnose reads from the host, gathered before the pure checks run.
struct HostFacts {
    bool iommuGroupsPresent = false;
    bool vfioPciLoaded = false;
    // Loaded, built in, or a module of the running kernel; nullopt when the kernel's module
    // index is not there to tell (a container, say).
    std::optional<bool> vfioPciAvailable{};
    std::vector<PciDevice> devices{};
    std::string kernelCommandLine{};
    std::string kernelRelease{};           // uname -r
    bool vendorResetLoaded = false;        // /sys/module/vendor_reset
    std::map<PciAddress, std::string> resetMethods{};  // sysfs reset_method, where there is one
    // vendor:device pairs that vfio-pci claims at boot (vfio-pci.ids= or modprobe.d options)
    std::vector<std::pair<uint16_t, uint16_t>> vfioIds{};
    std::string vfioIdsSource{};
    std::string hookLink{};                // where the hook should be
    bool hookInstalled = false;
    bool hookExecutable = false;
    bool oldDispatcher = false;            // /etc/libvirt/hooks/qemu (runs before qemu.d)
    // A running libvirt daemon that started before the hook was installed: it finds hooks
    // only at start (or SIGHUP), so it will not call this one.
    std::string libvirtStartedBeforeHook{};  // the daemon's name, "" when not so
    std::optional<std::tuple<int, int, int>> libvirtVersion{};  // nullopt: libvirt is not installed
    // Whether systemd knows the profile's display manager (asked only for a profile that restarts it).
    std::optional<bool> displayManagerKnown{};
    std::map<std::string, std::vector<std::string>> vmHookScripts{};  // qemu.d/<vm>/... scripts
    // Firmware frame buffers /proc/iomem lists (BOOTFB, efifb, simplefb, vesafb).
    std::vector<std::string> firmwareFramebuffers{};
    // The display servers and compositors running (their /proc/PID/comm), for "keep".
    std::set<std::string> compositors{};
};

// What a compositor or display server does when a GPU it has open goes away under a
// running session ("keep"), from its source and issue tracker; nullptr when `comm`
// (a /proc/PID/comm) names none known.
const char* compositorCase(const std::string& comm);

// The firmware frame buffers a /proc/iomem names.
std::vector<std::string> firmwareFramebuffers(const std::filesystem::path& iomem);

// The known compositors among the processes under `proc`.
std::set<std::string> runningCompositors(const std::filesystem::path& proc);

// With `devices`, only those and the other members of their IOMMU groups are read (a
// read can wake a GPU from D3cold): the daemon passes the devices it tracks.
HostFacts gatherHostFacts(const Sysfs& sysfs, const HostPaths& paths = {},
                          const std::optional<std::set<PciAddress>>& devices = std::nullopt);

// AMD GPUs whose reset is broken without the vendor-reset module (Polaris, Vega,
// Navi 10/12/14): the VM cannot be restarted without a host reboot.
bool needsVendorReset(uint16_t vendorId, uint16_t deviceId);

// Host checks, plus the profile's when `vm` is given (it must exist in config).
// Most severe first.
std::vector<Finding> diagnose(const Config& config, const HostFacts& host, const VmProfile* vm);

} // namespace gpuswap
