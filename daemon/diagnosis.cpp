#include "diagnosis.hpp"

#include "bar_size.hpp"
#include "iommu_group.hpp"

#include <algorithm>
#include <set>

namespace gpuswap {

namespace {

const PciDevice* findDevice(const HostFacts& host, const PciAddress& address)
{
    const auto it = std::find_if(host.devices.begin(), host.devices.end(),
                                 [&](const PciDevice& device) { return device.address == address; });
    return it == host.devices.end() ? nullptr : &*it;
}

void checkHost(const Config& config, const HostFacts& host, std::vector<Finding>& findings)
{
    if (!host.iommuGroupsPresent)
        findings.push_back({Severity::Error, "iommu-off",
                            "The kernel reports no IOMMU groups: turn on VT-d or AMD-Vi in the firmware setup "
                            "and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command line."});
    if (!host.vfioPciLoaded)
        findings.push_back({Severity::Info, "vfio-pci-not-loaded",
                            "The vfio-pci driver is not loaded yet; gpuswapd has systemd load it "
                            "(modprobe@vfio_pci.service) when a VM is prepared."});
    if (config.vms.empty())
        findings.push_back({Severity::Warning, "no-profiles",
                            "No VM profiles are configured: add one under \"vms\" in /etc/gpuswap/gpuswapd.json "
                            "and reload gpuswapd."});
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
            if (mask == 0) {
                findings.push_back({Severity::Error, "bar-not-resizable",
                                    address.str() + " BAR " + std::to_string(index) +
                                        " cannot be resized: remove it from \"bars\", or enable Resizable BAR "
                                        "(and Above 4G Decoding) in the firmware setup."});
            } else if (!bit || ((mask >> *bit) & 1U) == 0) {
                findings.push_back({Severity::Error, "bar-size-unsupported",
                                    address.str() + " BAR " + std::to_string(index) + " cannot be " +
                                        formatSize(size) + "; it supports " + formatSizeList(sizesInMask(mask)) + "."});
            }
        }
    }
}

void checkVm(const VmProfile& vm, const HostFacts& host, std::vector<Finding>& findings)
{
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
    for (const PciDevice& blocker : viabilityBlockers(host.devices, handedOver))
        findings.push_back({Severity::Error, "group-not-viable",
                            "IOMMU group " + std::to_string(blocker.iommuGroup) + " also holds " +
                                blocker.address.str() + " on " + blocker.driver + ", which profile " + vm.name +
                                " does not hand over: add it to the profile's devices, or move the card to a "
                                "slot with its own IOMMU group."});
    checkBars(vm, host, findings);
}

} // namespace

std::string severityName(Severity severity)
{
    switch (severity) {
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Info: return "info";
    }
    return "info";
}

HostFacts gatherHostFacts(const Sysfs& sysfs)
{
    HostFacts host;
    host.iommuGroupsPresent = sysfs.hasIommuGroups();
    host.vfioPciLoaded = sysfs.hasDriver("vfio-pci");
    for (const PciAddress& address : sysfs.listPciDevices())
        if (auto device = sysfs.readDevice(address))
            host.devices.push_back(std::move(*device));
    return host;
}

std::vector<Finding> diagnose(const Config& config, const HostFacts& host, const VmProfile* vm)
{
    std::vector<Finding> findings;
    checkHost(config, host, findings);
    if (vm != nullptr)
        checkVm(*vm, host, findings);
    std::stable_sort(findings.begin(), findings.end(),
                     [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
    return findings;
}

} // namespace gpuswap
