// SPDX-License-Identifier: GPL-2.0-or-later
// gpuswap-hook: libvirt's qemu hook (/etc/libvirt/hooks/qemu.d/gpuswap).
//
//   gpuswap-hook VM OPERATION SUBOPERATION EXTRA < domain XML
//
// "prepare begin" asks gpuswapd to hand the VM's devices over (PrepareVM with the domain
// XML); "release end" gives them back (ReleaseVM). Every other phase ends at once without
// touching the bus. Nothing goes to stdout; one line to stderr when libvirt should show
// the user why the VM does not start. Never calls libvirt (it would deadlock).
#include "client_bus.hpp"
#include "domain_xml.hpp"
#include "errors.hpp"

#include <sdbus-c++/sdbus-c++.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace {

// Longer than a queued turn behind another VM's hand-over plus gpuswapd's own deadlines
// (display manager, binds, holders: minutes at most); gpuswapd rolls back and answers
// before this.
constexpr auto kCallTimeout = std::chrono::minutes(30);

bool hasPciHostdev(const std::string& xml)
{
    try {
        return !gpuswap::pciHostdevsOfDomain(xml).empty();
    } catch (const gpuswap::Failure&) {
        return true;  // unreadable: assume the worst, the devices may be on host drivers
    }
}

} // namespace

int main(int argc, char* argv[])
{
    if (argc < 3)
        return 0;
    const std::string vm = argv[1];
    const std::string operation = argv[2];
    const std::string phase = argc > 3 ? argv[3] : "";
    const bool prepare = operation == "prepare" && phase == "begin";
    const bool release = operation == "release" && phase == "end";
    if (!prepare && !release)
        return 0;

    const std::string xml{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    try {
        auto connection = sdbus::createSystemBusConnection();
        auto manager = gpuswap::client::managerProxy(*connection);
        std::map<std::string, sdbus::Variant> options;
        if (prepare)
            options.emplace("domain-xml", sdbus::Variant(xml));
        std::vector<std::string> steps;
        manager->callMethod(gpuswap::bus::MethodName{prepare ? "PrepareVM" : "ReleaseVM"})
            .onInterface(gpuswap::bus::InterfaceName{gpuswap::client::kManagerInterface})
            .withTimeout(kCallTimeout)
            .withArguments(vm, options)
            .storeResultsTo(steps);
        return 0;
    } catch (const sdbus::Error& e) {
        if (release) {
            std::fprintf(stderr, "gpuswap: releasing %s failed: %s\n", vm.c_str(), e.getMessage().c_str());
            sd_journal_send("MESSAGE=releasing %s failed: %s", vm.c_str(), e.getMessage().c_str(), "PRIORITY=%i", LOG_ERR,
                            "SYSLOG_IDENTIFIER=gpuswap-hook", "GPUSWAP_VM=%s", vm.c_str(), "GPUSWAP_ERROR=%s",
                            e.getName().c_str(), nullptr);
            return 0;
        }
        if (e.getName() == gpuswap::errorName(gpuswap::ErrorCode::NoSuchProfile))
            return 0;  // not a VM of ours
        if (gpuswap::client::isUnreachable(e)) {
            if (!hasPciHostdev(xml))
                return 0;
            std::fprintf(stderr, "gpuswap: cannot reach gpuswapd (%s); not starting %s, whose PCI devices may still be "
                                 "on host drivers: systemctl start gpuswapd\n",
                         e.getMessage().c_str(), vm.c_str());
            return 1;
        }
        std::fprintf(stderr, "gpuswap: %s\n", e.getMessage().c_str());
        return 1;
    }
}
