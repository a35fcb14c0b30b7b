// SPDX-License-Identifier: GPL-2.0-or-later
#include "diagnosis.hpp"

#include "bar_size.hpp"
#include "iommu_group.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace gpuswap {

namespace {

const PciDevice* findDevice(const HostFacts& host, const PciAddress& address)
{
    const auto it = std::find_if(host.devices.begin(), host.devices.end(),
                                 [&](const PciDevice& device) { return device.address == address; });
    return it == host.devices.end() ? nullptr : &*it;
}

// "0000:03:00.0 [1002:73bf]"
std::string deviceLabel(const PciDevice& device)
{
    char ids[16];
    std::snprintf(ids, sizeof ids, "%04x:%04x", device.vendorId, device.deviceId);
    return device.address.str() + " [" + ids + "]";
}

void checkResets(const HostFacts& host, std::vector<Finding>& findings)
{
    int major = 0;
    int minor = 0;
    std::sscanf(host.kernelRelease.c_str(), "%d.%d", &major, &minor);
    const bool hasResetMethod = major > 5 || (major == 5 && minor >= 15);
    for (const PciDevice& device : host.devices) {
        if (!device.isDisplayController() || !needsVendorReset(device.vendorId, device.deviceId))
            continue;
        const std::string name = deviceLabel(device);
        if (!host.vendorResetLoaded) {
            findings.push_back({Severity::Warning, "needs-vendor-reset",
                                name + " is an AMD GPU whose reset is broken without the vendor-reset module: the VM "
                                       "may not start a second time without a reboot. Install vendor-reset "
                                       "(vendor-reset-dkms) and load it at boot."});
            continue;
        }
        const auto method = host.resetMethods.find(device.address);
        if (hasResetMethod && method != host.resetMethods.end() &&
            method->second.find("device_specific") == std::string::npos)
            findings.push_back({Severity::Warning, "reset-method-not-device-specific",
                                name + " resets with \"" + method->second + "\", so vendor-reset is not used on kernel " +
                                    host.kernelRelease + ": echo device_specific > /sys/bus/pci/devices/" +
                                    device.address.str() + "/reset_method (a udev rule can do it at boot)."});
    }
}

void checkHost(const Config& config, const HostFacts& host, std::vector<Finding>& findings)
{
    if (!host.iommuGroupsPresent) {
        const bool onCommandLine = host.kernelCommandLine.find("intel_iommu=on") != std::string::npos ||
                                   host.kernelCommandLine.find("amd_iommu=on") != std::string::npos;
        findings.push_back({Severity::Error, "iommu-off",
                            std::string("The kernel reports no IOMMU groups: turn on VT-d or AMD-Vi in the firmware setup") +
                                (onCommandLine ? "." : " and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) "
                                                       "on the kernel command line.")});
    }
    if (host.kernelCommandLine.find("pcie_acs_override=") != std::string::npos)
        findings.push_back({Severity::Warning, "acs-override",
                            "The kernel command line has pcie_acs_override=: the IOMMU groups are split by a patch, not "
                            "by the hardware, so a VM may still reach the memory of devices the hardware does not "
                            "isolate from its GPU (the NVMe disk, the network card). Prefer a slot whose IOMMU group "
                            "the hardware makes, and remove the parameter."});
    if (!host.hookInstalled)
        findings.push_back({Severity::Warning, "hook-missing",
                            host.hookLink + " is missing: libvirt starts VMs without handing the GPU over. "
                                            "Install gpuswap's hook there and restart libvirtd."});
    else if (!host.hookExecutable)
        findings.push_back({Severity::Error, "hook-not-executable",
                            host.hookLink + " is not executable, so libvirt skips it: chmod 755 it (or its target)."});
    if (host.libvirtVersion && *host.libvirtVersion < std::make_tuple(6, 5, 0)) {
        const auto& [major, minor, micro] = *host.libvirtVersion;
        findings.push_back({Severity::Error, "libvirt-too-old",
                            "libvirt " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(micro) +
                                " does not run hooks from qemu.d/ (6.5 and later do): upgrade libvirt, or call "
                                "gpuswap-hook from your /etc/libvirt/hooks/qemu."});
    }
    if (!host.libvirtStartedBeforeHook.empty())
        findings.push_back({Severity::Warning, "libvirt-started-before-hook",
                            host.libvirtStartedBeforeHook + " was started before " + host.hookLink +
                                " was installed and finds hooks only when it starts: restart it (systemctl restart " +
                                host.libvirtStartedBeforeHook + ") or send it SIGHUP."});
    if (host.oldDispatcher)
        findings.push_back({Severity::Warning, "old-hook-dispatcher",
                            "/etc/libvirt/hooks/qemu exists: a hook script from an older passthrough setup may move the "
                            "GPU itself and race gpuswapd. Remove it unless you know it leaves GPUs alone."});
    for (const PciDevice& device : host.devices) {
        const auto claimed = std::find(host.vfioIds.begin(), host.vfioIds.end(),
                                       std::make_pair(device.vendorId, device.deviceId));
        if (claimed != host.vfioIds.end())
            findings.push_back({Severity::Warning, "vfio-ids-claim",
                                deviceLabel(device) + " is claimed by vfio-pci at boot (" + host.vfioIdsSource +
                                    "): the desktop never gets it. Remove the ID there; gpuswapd hands the device "
                                    "over when the VM starts."});
    }
    checkResets(host, findings);
    if (host.vfioPciAvailable == false)
        findings.push_back({Severity::Error, "vfio-pci-missing",
                            "The running kernel " + host.kernelRelease + " has no vfio-pci module: install a kernel "
                            "with VFIO (CONFIG_VFIO_PCI), as Debian's and Fedora's are."});
    else if (!host.vfioPciLoaded)
        findings.push_back({Severity::Info, "vfio-pci-not-loaded",
                            "The vfio-pci driver is not loaded yet; gpuswapd has systemd load it "
                            "(modprobe@vfio_pci.service) when a VM is prepared."});
    if (config.vms.empty())
        findings.push_back({Severity::Warning, "no-profiles",
                            "No VM profiles are configured: add one under \"vms\" in /etc/gpuswap/gpuswapd.json "
                            "and reload gpuswapd."});
}

// "6.1.0-57-amd64" >= 6.1; an unreadable release counts as new enough (no false alarm).
bool kernelAtLeast(const std::string& release, int major, int minor)
{
    int releaseMajor = 0;
    int releaseMinor = 0;
    if (std::sscanf(release.c_str(), "%d.%d", &releaseMajor, &releaseMinor) != 2)
        return true;
    return releaseMajor > major || (releaseMajor == major && releaseMinor >= minor);
}

void checkBars(const VmProfile& vm, const HostFacts& host, std::vector<Finding>& findings)
{
    for (const auto& [address, sizes] : vm.bars) {
        const PciDevice* device = findDevice(host, address);
        if (device == nullptr)
            continue;  // reported as device-missing
        for (const auto& [index, size] : sizes) {
            const unsigned wanted = index;
            const auto bar = std::find_if(device->bars.begin(), device->bars.end(),
                                          [wanted](const PciBar& b) { return b.index == wanted; });
            const uint64_t mask = bar == device->bars.end() ? 0 : bar->supportedMask;
            const auto bit = maskBitForSize(size);
            if (mask == 0 && !kernelAtLeast(host.kernelRelease, 6, 1)) {
                findings.push_back({Severity::Error, "kernel-cannot-resize",
                                    "Linux " + host.kernelRelease + " cannot resize BARs of a device from user space "
                                    "(resourceN_resize came with 6.1): update the kernel, or remove " + address.str() +
                                        " BAR " + std::to_string(index) + " from \"bars\". Enabling Resizable BAR "
                                        "in the firmware does not change this."});
            } else if (mask == 0) {
                findings.push_back({Severity::Error, "bar-not-resizable",
                                    address.str() + " BAR " + std::to_string(index) +
                                        " cannot be resized: remove it from \"bars\", or enable Resizable BAR "
                                        "(and Above 4G Decoding) in the firmware setup."});
            } else if (!bit || ((mask >> *bit) & 1U) == 0) {
                findings.push_back({Severity::Error, "bar-size-unsupported",
                                    address.str() + " BAR " + std::to_string(index) + " cannot be " +
                                        formatSize(size) + "; it supports " + formatSizeList(sizesInMask(mask)) + "."});
            } else if (const auto why = cannotGrow(*device, index, size)) {
                findings.push_back({Severity::Error, "bar-no-64bit-window", *why + "."});
            }
        }
    }
}

// What the host keeps to show its desktop and console.
void checkDisplays(const VmProfile& vm, const HostFacts& host, const std::set<PciAddress>& handedOver,
                   std::vector<Finding>& findings)
{
    if (handedOver.empty())
        return;
    const bool hostKeepsADisplay = std::any_of(host.devices.begin(), host.devices.end(), [&](const PciDevice& device) {
        return device.isDisplayController() && !handedOver.contains(device.address);
    });
    if (!hostKeepsADisplay && vm.displayManager != DisplayManagerPolicy::Stop)
        findings.push_back({Severity::Error, "only-display",
                            "Profile " + vm.name + " hands over the host's only display device: no desktop can run "
                            "while the VM does. Set \"display_manager\": \"stop\" in the profile (the display "
                            "manager then stays stopped until the VM shuts down), or add a second GPU."});
    if (vm.displayManager == DisplayManagerPolicy::Keep)
        for (const std::string& compositor : host.compositors)
            findings.push_back({Severity::Info, "keep-compositor",
                                "Profile " + vm.name + " keeps the session running while its GPU goes; " + compositor +
                                    " runs: " + compositorCase(compositor) +
                                    " If the GPU is the one it renders with, use \"restart\"."});
    for (const PciAddress& address : handedOver) {
        const PciDevice* device = findDevice(host, address);
        if (device != nullptr && device->bootVga && !host.firmwareFramebuffers.empty() &&
            !kernelAtLeast(host.kernelRelease, 6, 0))
            findings.push_back({Severity::Error, "firmware-framebuffer",
                                "The firmware's frame buffer (" + host.firmwareFramebuffers.front() + " in /proc/iomem) sits "
                                "in the BARs of " + address.str() + ", the boot display, and Linux " + host.kernelRelease +
                                    " leaves it there: the VM would fail with \"BAR 0: can't reserve\". Update to "
                                    "Linux 6.0 or later (its GPU drivers and vfio-pci take the frame buffer over), or "
                                    "boot with initcall_blacklist=sysfb_init (video=efifb:off on older kernels)."});
        if (device != nullptr && device->bootVga)
            findings.push_back({Severity::Warning, "boot-display",
                                address.str() + " is the boot display: the host's console goes with it while the VM "
                                "runs, and the firmware's changes to it at boot can keep the VM's driver from "
                                "starting: if the VM shows nothing, give the domain the card's ROM (<rom file=.../> "
                                "in its <hostdev>), or make another GPU the boot display in the firmware setup."});
    }
}

void checkVm(const Config& config, const VmProfile& vm, const HostFacts& host, std::vector<Finding>& findings)
{
    if (host.displayManagerKnown == false)
        findings.push_back({Severity::Error, "display-manager-missing",
                            "systemd has no unit " + config.displayManagerUnit + ": set \"display_manager\" to your "
                            "display manager's unit (gdm.service, sddm.service, lightdm.service), or the profile's "
                            "\"display_manager\" to \"keep\"."});
    const auto scripts = host.vmHookScripts.find(vm.name);
    if (scripts != host.vmHookScripts.end() && !scripts->second.empty()) {
        std::string list;
        for (const std::string& script : scripts->second)
            list += (list.empty() ? "" : ", ") + script;
        findings.push_back({Severity::Warning, "old-hook-scripts",
                            "Hook scripts for " + vm.name + " from an older passthrough setup (" + list +
                                ") would move the devices too and race gpuswapd: remove them."});
    }
    if (vm.devices.empty()) {
        findings.push_back({Severity::Info, "devices-from-domain",
                            "Profile " + vm.name + " lists no devices: they are taken from the <hostdev> entries "
                            "of the domain XML when libvirt starts the VM."});
    }
    std::set<PciAddress> handedOver;
    for (const PciAddress& address : vm.devices) {
        const PciDevice* device = findDevice(host, address);
        if (device == nullptr) {
            findings.push_back({Severity::Error, "device-missing",
                                "Profile " + vm.name + " names " + address.str() +
                                    ", which is not present: check the address with lspci -D."});
            continue;
        }
        handedOver.insert(address);
        if (device->iommuGroup < 0)
            findings.push_back({Severity::Error, "no-iommu-group",
                                address.str() + " is in no IOMMU group: VFIO cannot use it until the IOMMU is on."});
    }
    const std::vector<PciDevice> blockers = viabilityBlockers(host.devices, handedOver);
    for (const PciDevice& blocker : blockers)
        findings.push_back({Severity::Error, "group-not-viable",
                            "IOMMU group " + std::to_string(blocker.iommuGroup) + " also holds " +
                                blocker.address.str() + " on " + blocker.driver + ", which profile " + vm.name +
                                " does not hand over: add it to the profile's devices (" +
                                viableDevicesLine(handedOver, blockers) +
                                "), or move the card to a slot with its own IOMMU group."});
    checkDisplays(vm, host, handedOver, findings);
    checkBars(vm, host, findings);
}

} // namespace

const char* compositorCase(const std::string& comm)
{
    // Versions and sources: README, "The keep hand-over and compositors".
    static const std::map<std::string, const char*> cases{
        {"gnome-shell",
         "GNOME's mutter (3.34 and later, merge request 713) updates its monitors when a GPU is removed and does not crash, "
         "but keeps the removed GPU's file open (mutter issue 710); on amdgpu the unbind completes anyway. It cannot lose "
         "the GPU it renders with."},
        {"kwin_wayland",
         "KDE's KWin (Plasma 5.22 and later) drops a removed secondary GPU and its outputs, but quits when the primary GPU "
         "it renders with goes (\"Primary gpu has been removed! Quitting...\")."},
        {"sway",
         "sway (wlroots 0.13 and later, wlroots pull request 2575) drops a removed secondary GPU's outputs; losing the "
         "primary GPU (the first of WLR_DRM_DEVICES) hangs the display (sway issue 7759)."},
        {"Hyprland",
         "Hyprland (aquamarine pull request 130, 2025) drops a removed secondary GPU; losing the primary crashes it, and on "
         "NVIDIA's driver it keeps /dev/nvidiaN open, which blocks the unbind."},
        {"wayfire",
         "Wayfire drops a GPU that only drives outputs; removing the GPU it renders with is not supported (wayfire issue "
         "2629)."},
        {"Xorg",
         "Xorg removes a secondary \"GPU screen\" (a PRIME output or offload GPU added by AutoAddGPU) on udev's remove "
         "event; the GPU of its protocol screen cannot go: use \"restart\" for that one."},
    };
    const auto found = cases.find(comm);
    return found == cases.end() ? nullptr : found->second;
}

bool needsVendorReset(uint16_t vendorId, uint16_t deviceId)
{
    if (vendorId != 0x1002)
        return false;
    static constexpr uint16_t kBrokenReset[] = {
        // Polaris 10/11/12
        0x67c0, 0x67c1, 0x67c2, 0x67c4, 0x67c7, 0x67ca, 0x67cc, 0x67cf, 0x67d0, 0x67df, 0x67e0, 0x67e3, 0x67e8,
        0x67eb, 0x67ef, 0x67ff, 0x6fdf, 0x6980, 0x6981, 0x6985, 0x6986, 0x6987, 0x6995, 0x6997, 0x699f,
        // Vega 10 and Vega 20
        0x6860, 0x6861, 0x6862, 0x6863, 0x6864, 0x6867, 0x6868, 0x6869, 0x686a, 0x686b, 0x686c, 0x686d, 0x686e,
        0x687f, 0x66a0, 0x66a1, 0x66a2, 0x66a3, 0x66a7, 0x66af,
        // Navi 10, 12, 14
        0x7310, 0x7312, 0x7318, 0x7319, 0x731a, 0x731b, 0x731e, 0x731f, 0x7360, 0x7362, 0x7340, 0x7341, 0x7347,
        0x734f};
    return std::find(std::begin(kBrokenReset), std::end(kBrokenReset), deviceId) != std::end(kBrokenReset);
}

std::string severityName(Severity severity)
{
    switch (severity) {
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Info: return "info";
    }
    return "info";
}

std::vector<Finding> diagnose(const Config& config, const HostFacts& host, const VmProfile* vm)
{
    std::vector<Finding> findings;
    checkHost(config, host, findings);
    if (vm != nullptr)
        checkVm(config, *vm, host, findings);
    std::stable_sort(findings.begin(), findings.end(),
                     [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
    return findings;
}

} // namespace gpuswap
