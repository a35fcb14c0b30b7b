#pragma once

#include "config.hpp"
#include "manager_adaptor.h"
#include "pci_device.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <string>
#include <vector>

namespace gpuswap {

using ManagerInterfaces =
    sdbus::AdaptorInterfaces<org::gpuswap1::Manager_adaptor, sdbus::Properties_adaptor, sdbus::ObjectManager_adaptor>;

inline constexpr const char* kManagerPath = "/org/gpuswap1";

// /org/gpuswap1: org.gpuswap1.Manager and the ObjectManager of the Device objects.
class ManagerObject final : public ManagerInterfaces {
public:
    // `config` is the daemon's current configuration; it outlives this object and
    // is replaced in place on reload (then call configReloaded()).
    ManagerObject(sdbus::IConnection& connection, const Sysfs& sysfs, const Config& config);
    ~ManagerObject();
    ManagerObject(const ManagerObject&) = delete;
    ManagerObject& operator=(const ManagerObject&) = delete;

    void configReloaded();

private:
    std::vector<sdbus::Struct<std::string, std::string, std::string>> Diagnose(const std::string& vm) override;
    std::string Version() override;
    std::vector<std::string> Profiles() override;
    std::vector<std::string> PreparedVMs() override { return {}; }
    std::string Operation() override { return {}; }

    const Sysfs& sysfs_;
    const Config& config_;
    std::vector<std::string> profiles_;
};

} // namespace gpuswap
