// SPDX-License-Identifier: GPL-2.0-or-later
#include "manager_object.hpp"
#include "sdbus_compat.hpp"

#include "bar_size.hpp"
#include "bus_guard.hpp"
#include "diagnosis.hpp"
#include "errors.hpp"
#include "log.hpp"
#include "request_options.hpp"
#include "text.hpp"
#include "version.hpp"

#include <systemd/sd-bus.h>

#include <algorithm>

namespace gpuswap {

namespace {

const std::set<std::string>& vmOptions()
{
    static const std::set<std::string> options{"dry-run", "interactive", "no-queue"};
    return options;
}

const std::set<std::string>& prepareOptions()
{
    static const std::set<std::string> options{"dry-run", "interactive", "no-queue", "domain-xml"};
    return options;
}

const std::set<std::string>& rebindOptions()
{
    static const std::set<std::string> options{"dry-run", "interactive", "no-queue", "force"};
    return options;
}

std::vector<std::string> profileNames(const Config& config)
{
    std::vector<std::string> names;
    names.reserve(config.vms.size());
    for (const auto& [name, _] : config.vms)
        names.push_back(name);
    return names;
}

Caller currentCaller(sdbus::IObject& object, bool interactiveOption)
{
    const auto& message = bus::currentMessage(object);
    return {message.getSender(),
            interactiveOption || sd_bus_message_get_allow_interactive_authorization(bus::RawMessage::of(message)) > 0};
}

RequestOptions parseOptions(const std::map<std::string, sdbus::Variant>& options, const std::set<std::string>& accepted)
{
    std::map<std::string, OptionValue> values;
    for (const auto& [name, variant] : options) {
        const std::string type = variant.peekValueType();
        if (type == "b")
            values.emplace(name, variant.get<bool>());
        else if (type == "s")
            values.emplace(name, variant.get<std::string>());
        else
            values.emplace(name, OtherType{type});
    }
    return parseRequestOptions(values, accepted);
}

void checkVmName(const std::string& vm)
{
    if (!isValidVmName(vm))
        throw Failure(ErrorCode::InvalidArgument, "a VM name must be 1 to 255 bytes without '/' or control characters");
}

PciAddress checkAddress(const std::string& text)
{
    auto address = PciAddress::parse(text);
    if (!address)
        throw Failure(ErrorCode::InvalidArgument,
                      "\"" + escapeText(utf8Prefix(text, 64)) + "\" is not a PCI address DDDD:BB:DD.F");
    return *address;
}

// One path component of [A-Za-z0-9_.-], as driver directories are named.
void checkDriverName(const std::string& driver)
{
    const bool ok = driver.size() <= 64 && driver != "." && driver != ".." &&
                    std::all_of(driver.begin(), driver.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
                    });
    if (!ok)
        throw Failure(ErrorCode::InvalidArgument, "\"" + escapeText(utf8Prefix(driver, 64)) +
                                                      "\" is not a driver name (1-64 of A-Z a-z 0-9 _ . -, or empty for the default)");
}

} // namespace

ManagerObject::ManagerObject(sdbus::IConnection& connection, const Sysfs& sysfs, const Config& config, Authorizer& authorizer)
    : ManagerInterfaces(connection, sdbus::ObjectPath{kManagerPath}), sysfs_(sysfs), config_(config), authorizer_(authorizer),
      profiles_(profileNames(config))
{
    registerAdaptor();
}

ManagerObject::~ManagerObject() { unregisterAdaptor(); }

void ManagerObject::configReloaded()
{
    invalidateFacts();
    auto names = profileNames(config_);
    if (names == profiles_)
        return;
    profiles_ = std::move(names);
    sendSafely("PropertiesChanged", [&] {
        emitPropertiesChangedSignal(bus::InterfaceName{org::gpuswap1::Manager_adaptor::INTERFACE_NAME},
                                    bus::propertyNames({"Profiles"}));
    });
}

void ManagerObject::abandonPendingCalls()
{
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, fail] : pending)
        fail(bus::error(errorName(ErrorCode::ShuttingDown), "gpuswapd is stopping"));
}

void ManagerObject::progress(const std::string& operation, unsigned step, unsigned steps, const std::string& description)
{
    sendSafely("Progress", [&] { emitProgress(operation, step, steps, description); });
}

void ManagerObject::finished(const std::string& operation, const std::optional<Failure>& failure)
{
    // Every bus client sees this: the public message, without the caller's details.
    sendSafely("OperationFinished", [&] {
        emitOperationFinished(operation, !failure, failure ? errorName(failure->code()) : std::string(),
                              failure ? failure->publicMessage() : std::string());
    });
}

void ManagerObject::stateChanged()
{
    std::vector<std::string> changed;
    auto prepared = handOver_->preparedVms();
    if (prepared != preparedVms_) {
        preparedVms_ = std::move(prepared);
        changed.emplace_back("PreparedVMs");
    }
    if (handOver_->operation() != operation_) {
        operation_ = handOver_->operation();
        changed.emplace_back("Operation");
    }
    if (!changed.empty())
        sendSafely("PropertiesChanged", [&] {
            emitPropertiesChangedSignal(bus::InterfaceName{org::gpuswap1::Manager_adaptor::INTERFACE_NAME},
                                        bus::propertyNames(changed));
        });
}

template <typename Value>
HandOver::Reply ManagerObject::track(sdbus::Result<Value>&& result, std::function<Value(const Outcome&)> value)
{
    // sdbus::Result is move-only and std::function wants copies: share it.
    auto shared = std::make_shared<sdbus::Result<Value>>(std::move(result));
    const uint64_t id = nextCall_++;
    pending_[id] = [shared](const sdbus::Error& error) { shared->returnError(error); };
    return [this, id, shared, value](std::optional<Failure> failure, const Outcome& outcome) {
        if (pending_.erase(id) == 0)
            return;  // already answered (shutdown)
        sendSafely("a reply", [&] {
            if (failure)
                shared->returnError(toBusError(*failure));
            else
                shared->returnResults(value(outcome));
        });
    };
}

HandOver::Reply ManagerObject::track(sdbus::Result<>&& result)
{
    auto shared = std::make_shared<sdbus::Result<>>(std::move(result));
    const uint64_t id = nextCall_++;
    pending_[id] = [shared](const sdbus::Error& error) { shared->returnError(error); };
    return [this, id, shared](std::optional<Failure> failure, const Outcome&) {
        if (pending_.erase(id) == 0)
            return;
        sendSafely("a reply", [&] {
            if (failure)
                shared->returnError(toBusError(*failure));
            else
                shared->returnResults();
        });
    };
}

void ManagerObject::authorizeThen(Action action, const RequestOptions& options, bool rootOnly,
                                  const HandOver::Reply& reply, const std::function<void(HandOver::Reply)>& start)
{
    const Caller caller = currentCaller(getObject(), options.interactive);
    authorizer_.identify(caller.busName, [this, caller, action, rootOnly, reply, start](const std::optional<Failure>& unknown,
                                                                                          uid_t uid) {
        if (unknown) {
            reply(unknown, {});
            return;
        }
        Admission::Ticket ticket = admission_.admit(uid);
        if (!ticket) {
            reply(Failure(ErrorCode::Busy, "too many calls are waiting (at most " + std::to_string(Admission::kPerUid) +
                                               " per user and " + std::to_string(Admission::kTotal) +
                                               " in all): try again when gpuswapd is done with them"),
                  {});
            return;
        }
        // The place is held until the call is answered.
        HandOver::Reply held = [reply, ticket](std::optional<Failure> failure, const Outcome& outcome) {
            reply(std::move(failure), outcome);
        };
        authorizer_.authorize(caller, uid, action, rootOnly, [held, start](const std::optional<Failure>& denied) {
            if (denied)
                held(denied, {});
            else
                start(held);
        });
    });
}

void ManagerObject::PrepareVM(sdbus::Result<std::vector<std::string>>&& result, std::string vm,
                              std::map<std::string, sdbus::Variant> options)
{
    guarded("PrepareVM", [&] {
        checkVmName(vm);
        const RequestOptions parsed = parseOptions(options, prepareOptions());
        auto reply = track<std::vector<std::string>>(std::move(result), [](const Outcome& o) { return o.steps; });
        authorizeThen(Action::ManageVm, parsed, parsed.domainXml.has_value(), reply,
                      [this, vm, parsed](const HandOver::Reply& held) { handOver_->prepare(vm, parsed, held); });
    });
}

void ManagerObject::ReleaseVM(sdbus::Result<std::vector<std::string>>&& result, std::string vm,
                              std::map<std::string, sdbus::Variant> options)
{
    guarded("ReleaseVM", [&] {
        checkVmName(vm);
        const RequestOptions parsed = parseOptions(options, vmOptions());
        auto reply = track<std::vector<std::string>>(std::move(result), [](const Outcome& o) { return o.steps; });
        authorizeThen(Action::ManageVm, parsed, false, reply,
                      [this, vm, parsed](const HandOver::Reply& held) { handOver_->release(vm, parsed, held); });
    });
}

void ManagerObject::RebindDevice(sdbus::Result<std::string>&& result, std::string address, std::string driver,
                                 std::map<std::string, sdbus::Variant> options)
{
    guarded("RebindDevice", [&] {
        const PciAddress pci = checkAddress(address);
        if (!driver.empty())
            checkDriverName(driver);
        const RequestOptions parsed = parseOptions(options, rebindOptions());
        auto reply = track<std::string>(std::move(result), [](const Outcome& o) { return o.previousDriver; });
        authorizeThen(Action::RebindDevice, parsed, false, reply, [this, pci, driver, parsed](const HandOver::Reply& held) {
            handOver_->rebind(pci, driver, parsed, held);
        });
    });
}

void ManagerObject::ResizeBar(sdbus::Result<uint64_t>&& result, std::string address, uint32_t bar, uint64_t size,
                              std::map<std::string, sdbus::Variant> options)
{
    guarded("ResizeBar", [&] {
        const PciAddress pci = checkAddress(address);
        if (bar > 5)
            throw Failure(ErrorCode::InvalidArgument, "BAR " + std::to_string(bar) + " does not exist: indexes are 0-5");
        if (!isValidBarSize(size))
            throw Failure(ErrorCode::InvalidArgument,
                          std::to_string(size) + " bytes is not a BAR size: a power of two of at least 1 MiB");
        const RequestOptions parsed = parseOptions(options, vmOptions());
        auto reply = track<uint64_t>(std::move(result), [](const Outcome& o) { return o.previousSize; });
        authorizeThen(Action::ResizeBar, parsed, false, reply, [this, pci, bar, size, parsed](const HandOver::Reply& held) {
            handOver_->resize(pci, bar, size, parsed, held);
        });
    });
}

void ManagerObject::Reload(sdbus::Result<>&& result)
{
    guarded("Reload", [&] {
        auto reply = track(std::move(result));
        authorizeThen(Action::Reload, {}, false, reply, [this](const HandOver::Reply& held) { handOver_->reload(held); });
    });
}

void ManagerObject::Diagnose(sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, std::string>>>&& result,
                             std::string vm)
{
    guarded("Diagnose", [&] {
        const VmProfile* profile = nullptr;
        if (!vm.empty()) {
            checkVmName(vm);
            const auto it = config_.vms.find(vm);
            if (it == config_.vms.end())
                throw Failure(ErrorCode::NoSuchProfile, "no profile for VM \"" + vm + "\" in the configuration");
            profile = &it->second;
        }
        auto host = std::make_shared<HostFacts>(*hostFacts());
        auto reply = std::make_shared<sdbus::Result<std::vector<sdbus::Struct<std::string, std::string, std::string>>>>(
            std::move(result));
        // Copies: the configuration may be reloaded before systemd answers.
        auto answer = [reply, host, config = config_, vm] {
            const VmProfile* profile = vm.empty() ? nullptr : &config.vms.at(vm);
            std::vector<sdbus::Struct<std::string, std::string, std::string>> findings;
            for (const Finding& finding : diagnose(config, *host, profile))
                findings.emplace_back(severityName(finding.severity), finding.code, finding.message);
            reply->returnResults(findings);
        };
        if (profile == nullptr || profile->displayManager == DisplayManagerPolicy::Keep) {
            answer();
            return;
        }
        // Only a definite "no such unit" is a finding; systemd not answering is not.
        units_->unitKnown(config_.displayManagerUnit, [host, answer](std::optional<bool> known) {
            host->displayManagerKnown = known;
            answer();
        });
    });
}

std::shared_ptr<const HostFacts> ManagerObject::hostFacts()
{
    const auto now = std::chrono::steady_clock::now();
    if (facts_ && now - factsRead_ < std::chrono::seconds(1))
        return facts_;
    HostPaths paths;
    paths.hookLink = kLibvirtHookLink;
    std::set<PciAddress> tracked;
    for (const auto& [address, device] : registry_->devices())
        tracked.insert(address);
    facts_ = std::make_shared<const HostFacts>(gatherHostFacts(sysfs_, paths, tracked));
    factsRead_ = now;
    return facts_;
}

std::string ManagerObject::Version() { return kVersion; }

std::vector<std::string> ManagerObject::Profiles() { return profiles_; }

std::vector<std::string> ManagerObject::PreparedVMs() { return preparedVms_; }

std::string ManagerObject::Operation() { return operation_; }

} // namespace gpuswap
