// SPDX-License-Identifier: GPL-2.0-or-later
#include "udev_watch.hpp"

#include "log.hpp"

#include <libudev.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>

#include <cstring>
#include <system_error>
#include <stdexcept>
#include <string_view>

namespace gpuswap {

namespace {

// Generous like bolt's: a swap of one card produces a burst of events, and a full
// buffer drops them silently.
constexpr int kReceiveBufferBytes = 128 * 1024 * 1024;

// libudev may free a returned string when a later call re-reads the same device,
// so every value is copied at once.
std::string copyOf(const char* value) { return value == nullptr ? std::string() : std::string(value); }

} // namespace

std::optional<PciAddress> pciAddressInDevpath(const std::string& devpath)
{
    std::string_view rest = devpath;
    while (!rest.empty()) {
        const auto slash = rest.rfind('/');
        const std::string_view component = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
        if (auto address = PciAddress::parse(component))
            return address;
        if (slash == std::string_view::npos)
            break;
        rest = rest.substr(0, slash);
    }
    return std::nullopt;
}

UdevWatch::UdevWatch(sd_event* event, Handler handler) : handler_(std::move(handler))
{
    udev_ = udev_new();
    if (udev_ == nullptr)
        throw std::runtime_error("udev_new failed");
    monitor_ = udev_monitor_new_from_netlink(udev_, "udev");
    if (monitor_ == nullptr) {
        udev_unref(udev_);
        throw std::runtime_error("cannot open the udev monitor (is /run/udev there?)");
    }
    for (const char* subsystem : {"pci", "drm", "sound", "drivers"})
        udev_monitor_filter_add_match_subsystem_devtype(monitor_, subsystem, nullptr);
    udev_monitor_set_receive_buffer_size(monitor_, kReceiveBufferBytes);
    int r = udev_monitor_enable_receiving(monitor_);
    if (r >= 0)
        r = sd_event_add_io(event, &source_, udev_monitor_get_fd(monitor_), EPOLLIN, &UdevWatch::onReadable, this);
    if (r < 0) {
        udev_monitor_unref(monitor_);
        udev_unref(udev_);
        throw std::runtime_error(std::string("cannot watch udev events: ") + std::error_code(-r, std::generic_category()).message());
    }
}

UdevWatch::~UdevWatch()
{
    sd_event_source_disable_unref(source_);
    udev_monitor_unref(monitor_);
    udev_unref(udev_);
}

int UdevWatch::onReadable(sd_event_source*, int, uint32_t, void* userdata)
{
    static_cast<UdevWatch*>(userdata)->drain();
    return 0;
}

void UdevWatch::drain()
{
    while (udev_device* device = udev_monitor_receive_device(monitor_)) {
        UdevEvent event;
        event.action = copyOf(udev_device_get_action(device));
        event.subsystem = copyOf(udev_device_get_subsystem(device));
        event.devpath = copyOf(udev_device_get_devpath(device));
        event.driver = copyOf(udev_device_get_property_value(device, "DRIVER"));
        udev_device_unref(device);
        event.pciAddress = pciAddressInDevpath(event.devpath);
        try {
            handler_(event);
        } catch (const std::exception& e) {
            log::error(std::string("handling a udev event failed: ") + e.what(),
                       {{"UDEV_ACTION", event.action}, {"UDEV_DEVPATH", event.devpath}});
        }
    }
}

} // namespace gpuswap
