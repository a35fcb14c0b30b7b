// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "admission.hpp"
#include "authorizer.hpp"
#include "config.hpp"
#include "device_registry.hpp"
#include "diagnosis.hpp"
#include "hand_over.hpp"
#include "manager_adaptor.h"
#include "pci_device.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <functional>
#include <memory>
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

    void attach(HandOver& handOver, UnitControl& units, const DeviceRegistry& registry)
    {
        handOver_ = &handOver;
        units_ = &units;
        registry_ = &registry;
        preparedVms_ = handOver.preparedVms();
    }
    // A device changed: the next Diagnose reads the host again.
    void invalidateFacts() { facts_.reset(); }
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
    // Identifies the caller, gives it a place among the waiting calls (or Busy), checks
    // it, then runs `start` with the reply that holds the place (it hands the call to
    // HandOver).
    void authorizeThen(Action action, const RequestOptions& options, bool rootOnly, const HandOver::Reply& reply,
                       const std::function<void(HandOver::Reply)>& start);

    const Sysfs& sysfs_;
    const Config& config_;
    Authorizer& authorizer_;
    Admission admission_;
    const DeviceRegistry* registry_ = nullptr;
    // Diagnose answers from facts up to a second old: a flood of calls costs one read.
    std::shared_ptr<const HostFacts> facts_;
    std::chrono::steady_clock::time_point factsRead_{};
    std::shared_ptr<const HostFacts> hostFacts();
    HandOver* handOver_ = nullptr;
    UnitControl* units_ = nullptr;
    std::vector<std::string> profiles_;
    std::vector<std::string> preparedVms_;
    std::string operation_;
    uint64_t nextCall_ = 1;
    std::map<uint64_t, std::function<void(const sdbus::Error&)>> pending_;
};

} // namespace gpuswap
