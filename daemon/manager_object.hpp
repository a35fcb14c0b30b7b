#pragma once

#include "authorizer.hpp"
#include "config.hpp"
#include "hand_over.hpp"
#include "manager_adaptor.h"
#include "pci_device.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gpuswap {

using ManagerInterfaces =
    sdbus::AdaptorInterfaces<org::gpuswap1::Manager_adaptor, sdbus::Properties_adaptor, sdbus::ObjectManager_adaptor>;

inline constexpr const char* kManagerPath = "/org/gpuswap1";

// /org/gpuswap1: org.gpuswap1.Manager and the ObjectManager of the Device objects.
// A call goes: arguments checked, caller authorized, then handed to HandOver.
class ManagerObject final : public ManagerInterfaces, public HandOver::Listener {
public:
    // `config` is the daemon's current configuration; it outlives this object and
    // is replaced in place on reload (then call configReloaded()).
    ManagerObject(sdbus::IConnection& connection, const Sysfs& sysfs, const Config& config, Authorizer& authorizer);
    ~ManagerObject();
    ManagerObject(const ManagerObject&) = delete;
    ManagerObject& operator=(const ManagerObject&) = delete;

    void attach(HandOver& handOver, UnitControl& units)
    {
        handOver_ = &handOver;
        units_ = &units;
        preparedVms_ = handOver.preparedVms();
    }
    void configReloaded();
    // Answers every call still waiting (authorization, queue) with ShuttingDown.
    void abandonPendingCalls();

    void progress(const std::string& operation, unsigned step, unsigned steps, const std::string& description) override;
    void finished(const std::string& operation, const std::optional<Failure>& failure) override;
    void stateChanged() override;

private:
    void PrepareVM(sdbus::Result<std::vector<std::string>>&& result, std::string vm,
                   std::map<std::string, sdbus::Variant> options) override;
    void ReleaseVM(sdbus::Result<std::vector<std::string>>&& result, std::string vm,
                   std::map<std::string, sdbus::Variant> options) override;
    void RebindDevice(sdbus::Result<std::string>&& result, std::string address, std::string driver,
                      std::map<std::string, sdbus::Variant> options) override;
    void ResizeBar(sdbus::Result<uint64_t>&& result, std::string address, uint32_t bar, uint64_t size,
                   std::map<std::string, sdbus::Variant> options) override;
    void Reload(sdbus::Result<>&& result) override;
    void Diagnose(sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, std::string>>>&& result,
                  std::string vm) override;
    std::string Version() override;
    std::vector<std::string> Profiles() override;
    std::vector<std::string> PreparedVMs() override;
    std::string Operation() override;

    // Registers a pending reply; `answer(failure, outcome)` is what HandOver calls back.
    template <typename Value>
    HandOver::Reply track(sdbus::Result<Value>&& result, std::function<Value(const Outcome&)> value);
    HandOver::Reply track(sdbus::Result<>&& result);
    // Checks the caller, then runs `start` (which hands the call to HandOver).
    void authorizeThen(Action action, const RequestOptions& options, bool rootOnly, const HandOver::Reply& reply,
                       const std::function<void()>& start);

    const Sysfs& sysfs_;
    const Config& config_;
    Authorizer& authorizer_;
    HandOver* handOver_ = nullptr;
    UnitControl* units_ = nullptr;
    std::vector<std::string> profiles_;
    std::vector<std::string> preparedVms_;
    std::string operation_;
    uint64_t nextCall_ = 1;
    std::map<uint64_t, std::function<void(const sdbus::Error&)>> pending_;
};

} // namespace gpuswap
