#include "manager_object.hpp"

#include "bus_guard.hpp"
#include "diagnosis.hpp"
#include "errors.hpp"
#include "version.hpp"

namespace gpuswap {

namespace {

std::vector<std::string> profileNames(const Config& config)
{
    std::vector<std::string> names;
    names.reserve(config.vms.size());
    for (const auto& [name, _] : config.vms)
        names.push_back(name);
    return names;
}

} // namespace

ManagerObject::ManagerObject(sdbus::IConnection& connection, const Sysfs& sysfs, const Config& config)
    : ManagerInterfaces(connection, kManagerPath), sysfs_(sysfs), config_(config), profiles_(profileNames(config))
{
    registerAdaptor();
}

ManagerObject::~ManagerObject() { unregisterAdaptor(); }

void ManagerObject::configReloaded()
{
    auto names = profileNames(config_);
    if (names == profiles_)
        return;
    profiles_ = std::move(names);
    emitPropertiesChangedSignal(org::gpuswap1::Manager_adaptor::INTERFACE_NAME, {"Profiles"});
}

std::vector<sdbus::Struct<std::string, std::string, std::string>> ManagerObject::Diagnose(const std::string& vm)
{
    return guarded("Diagnose", [&] {
        const VmProfile* profile = nullptr;
        if (!vm.empty()) {
            if (!isValidVmName(vm))
                throw Failure(ErrorCode::InvalidArgument,
                              "a VM name must be 1 to 255 bytes without '/' or control characters");
            const auto it = config_.vms.find(vm);
            if (it == config_.vms.end())
                throw Failure(ErrorCode::NoSuchProfile, "no profile for VM \"" + vm + "\" in the configuration");
            profile = &it->second;
        }
        std::vector<sdbus::Struct<std::string, std::string, std::string>> reply;
        for (const Finding& finding : diagnose(config_, gatherHostFacts(sysfs_), profile))
            reply.emplace_back(severityName(finding.severity), finding.code, finding.message);
        return reply;
    });
}

std::string ManagerObject::Version() { return kVersion; }

std::vector<std::string> ManagerObject::Profiles() { return profiles_; }

} // namespace gpuswap
