// SPDX-License-Identifier: GPL-2.0-or-later
#include "daemon.hpp"

#include "authorizer.hpp"
#include "bus_attachment.hpp"
#include "device_object.hpp"
#include "device_registry.hpp"
#include "hand_over.hpp"
#include "journal.hpp"
#include "log.hpp"
#include "manager_object.hpp"
#include "sdbus_compat.hpp"
#include "sysfs_writer.hpp"
#include "udev_watch.hpp"
#include "unit_control.hpp"

#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cstring>
#include <system_error>
#include <map>
#include <memory>
#include <set>

namespace gpuswap {

namespace {

std::set<PciAddress> profileDevices(const Config& config)
{
    std::set<PciAddress> addresses;
    for (const auto& [name, vm] : config.vms) {
        addresses.insert(vm.devices.begin(), vm.devices.end());
        for (const auto& [address, sizes] : vm.bars)
            addresses.insert(address);
    }
    return addresses;
}

std::unique_ptr<sdbus::IConnection> connectBus(const std::string& address)
{
    // sdbus-c++ 1.2 has no "system bus at this address"; the session variant
    // connects to any address, which is what tests on a private bus need.
    return address.empty() ? sdbus::createSystemBusConnection()
                           : sdbus::createSessionBusConnectionWithAddress(address);
}

// The Device objects on the bus follow the registry.
class DeviceObjects final : public DeviceRegistry::Listener {
public:
    explicit DeviceObjects(sdbus::IConnection& connection) : connection_(connection) {}

    void deviceAdded(const PciDevice& device) override
    {
        objects_[device.address] = std::make_unique<DeviceObject>(connection_, device);
        log::debug("tracking " + device.address.str(), {{"DEVICE", device.address.str()}});
    }
    void deviceChanged(const PciDevice& device, const std::vector<std::string>& properties) override
    {
        objects_.at(device.address)->update(device, properties);
        // A driver's unbind and probe also add and remove its DRM and sound nodes: the
        // journal names the driver only when it is the driver that changed.
        if (std::find(properties.begin(), properties.end(), "Driver") != properties.end()) {
            log::info(device.address.str() + " is now on " + (device.driver.empty() ? "no driver" : device.driver),
                      {{"DEVICE", device.address.str()}, {"DRIVER", device.driver}});
            return;
        }
        std::string changed;
        for (const std::string& name : properties)
            changed += (changed.empty() ? "" : ", ") + name;
        log::debug(device.address.str() + " changed: " + changed, {{"DEVICE", device.address.str()}});
    }
    void deviceRemoved(const PciAddress& address) override
    {
        objects_.erase(address);
        log::info(address.str() + " is gone", {{"DEVICE", address.str()}});
    }

private:
    sdbus::IConnection& connection_;
    std::map<PciAddress, std::unique_ptr<DeviceObject>> objects_;
};

class Daemon {
public:
    Daemon(const DaemonOptions& options, Config config) : options_(options), config_(std::move(config))
    {
        sysfs_.respectLocks(locks_);
        check(sd_event_default(&event_), "sd_event_default");
        sigset_t signals;
        sigemptyset(&signals);
        for (int signal : {SIGTERM, SIGINT, SIGHUP})
            sigaddset(&signals, signal);
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);
        check(sd_event_add_signal(event_, nullptr, SIGTERM, &Daemon::onStop, this), "SIGTERM");
        check(sd_event_add_signal(event_, nullptr, SIGINT, &Daemon::onStop, this), "SIGINT");
        check(sd_event_add_signal(event_, nullptr, SIGHUP, &Daemon::onReload, this), "SIGHUP");
        // Pings only when systemd asked for them (WATCHDOG_USEC): otherwise no timer.
        check(sd_event_set_watchdog(event_, 1), "sd_event_set_watchdog");
    }

    ~Daemon()
    {
        handOver_.reset();
        authorizer_.reset();
        units_.reset();
        writer_.reset();
        registry_.reset();
        devices_.reset();
        udev_.reset();
        manager_.reset();
        attachment_.reset();
        connection_.reset();
        sd_event_unref(event_);
    }

    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    int run()
    {
        connection_ = connectBus(options_.busAddress);
        attachment_ = std::make_unique<BusAttachment>(event_, *connection_);
        authorizer_ = std::make_unique<Authorizer>(*connection_);
        manager_ = std::make_unique<ManagerObject>(*connection_, sysfs_, config_, *authorizer_);
        devices_ = std::make_unique<DeviceObjects>(*connection_);
        registry_ = std::make_unique<DeviceRegistry>(sysfs_, *devices_);
        // Watch before the first scan, so no change slips between the two.
        udev_ = std::make_unique<UdevWatch>(event_, [this](const UdevEvent& event) { onUdevEvent(event); });
        registry_->setProfileDevices(profileDevices(config_));
        writer_ = std::make_unique<SysfsWriter>(event_, locks_);
        units_ = std::make_unique<UnitControl>(*connection_);
        handOver_ = std::make_unique<HandOver>(event_, sysfs_, *writer_, *units_, Journal(options_.stateDir), config_,
                                               *manager_, [this] { reloadConfig(); });
        manager_->attach(*handOver_, *units_, *registry_);

        // Objects first, then the name: whoever sees the name finds them in place.
        connection_->requestName(bus::ServiceName{kBusName});
        log::info("serving " + std::string(kBusName) + " with " + std::to_string(registry_->devices().size()) +
                      " tracked devices and " + std::to_string(config_.vms.size()) + " profiles",
                  {{"CONFIG", options_.configPath.string()}});
        sd_notify(0, "READY=1\nSTATUS=Serving");
        // Calls that arrive meanwhile wait for the rollback of an interrupted operation.
        handOver_->recover();

        const int r = sd_event_loop(event_);
        if (r < 0) {
            log::error(std::string("event loop failed: ") + std::error_code(-r, std::generic_category()).message());
            return 1;
        }
        log::info("stopped");
        return 0;
    }

private:
    static void check(int r, const char* what)
    {
        if (r < 0)
            throw std::runtime_error(std::string(what) + ": " + std::error_code(-r, std::generic_category()).message());
    }

    static int onStop(sd_event_source*, const struct signalfd_siginfo*, void* userdata)
    {
        auto* self = static_cast<Daemon*>(userdata);
        if (self->stopping_)
            return 0;
        self->stopping_ = true;
        log::info(self->handOver_->operation().empty()
                      ? std::string("stopping on request")
                      : "stopping on request after rolling back " + self->handOver_->operation());
        sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
        self->handOver_->shutdown([self] {
            self->manager_->abandonPendingCalls();
            sd_event_exit(self->event_, 0);
        });
        return 0;
    }

    static int onReload(sd_event_source*, const struct signalfd_siginfo*, void* userdata)
    {
        // Between operations, like the Reload method.
        static_cast<Daemon*>(userdata)->handOver_->reload([](std::optional<Failure> failure, const Outcome&) {
            if (failure)
                log::error(failure->what(), {{"ERROR", errorName(failure->code())}});
        });
        return 0;
    }

    // Throws Failure(BadConfig), keeping the configuration it had.
    void reloadConfig()
    {
        sd_notify(0, "RELOADING=1");
        try {
            config_ = loadConfig(options_.configPath);
        } catch (const ConfigError& e) {
            sd_notify(0, "READY=1");
            throw Failure(ErrorCode::BadConfig, std::string("kept the previous configuration: ") + e.what() +
                                                    "; fix the file and reload again");
        }
        manager_->configReloaded();
        registry_->setProfileDevices(profileDevices(config_));
        log::info("reloaded the configuration: " + std::to_string(config_.vms.size()) + " profiles",
                  {{"CONFIG", options_.configPath.string()}});
        sd_notify(0, "READY=1");
    }

    void onUdevEvent(const UdevEvent& event)
    {
        log::debug("udev " + event.action + " " + event.devpath, {{"UDEV_ACTION", event.action}});
        if (event.subsystem == "pci" && (event.action == "add" || event.action == "remove")) {
            registry_->rescan();
            manager_->invalidateFacts();
            return;
        }
        if (event.pciAddress)
            registry_->refresh(*event.pciAddress);
        manager_->invalidateFacts();
        handOver_->onUdevEvent(event);
    }

    DaemonOptions options_;
    Config config_;
    DeviceLocks locks_;
    Sysfs sysfs_;
    sd_event* event_ = nullptr;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<BusAttachment> attachment_;
    std::unique_ptr<ManagerObject> manager_;
    std::unique_ptr<DeviceObjects> devices_;
    std::unique_ptr<DeviceRegistry> registry_;
    std::unique_ptr<UdevWatch> udev_;
    std::unique_ptr<SysfsWriter> writer_;
    std::unique_ptr<UnitControl> units_;
    std::unique_ptr<Authorizer> authorizer_;
    std::unique_ptr<HandOver> handOver_;
    bool stopping_ = false;
};

} // namespace

int runDaemon(const DaemonOptions& options, Config config)
{
    try {
        Daemon daemon(options, std::move(config));
        return daemon.run();
    } catch (const std::exception& e) {
        log::error(std::string("cannot start: ") + e.what());
        sd_notifyf(0, "STATUS=Failed to start: %s", e.what());
        return 1;
    }
}

} // namespace gpuswap
