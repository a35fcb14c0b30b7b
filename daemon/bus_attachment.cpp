// SPDX-License-Identifier: GPL-2.0-or-later
#include "bus_attachment.hpp"

#include "log.hpp"

#include <systemd/sd-event.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <stdexcept>
#include <string>

namespace gpuswap {


#if SDBUS_CPP_MAJOR >= 2

// sdbus-c++ 2 attaches to sd-event itself (IConnection::attachSdEventLoop).
BusAttachment::BusAttachment(sd_event* event, sdbus::IConnection& connection) : event_(event), connection_(connection)
{
    connection_.attachSdEventLoop(event_);
}

BusAttachment::~BusAttachment() { connection_.detachSdEventLoop(); }

int BusAttachment::onPrepare(sd_event_source*, void*) { return 0; }
int BusAttachment::onIo(sd_event_source*, int, uint32_t, void*) { return 0; }
int BusAttachment::onTimer(sd_event_source*, uint64_t, void*) { return 0; }

#else

namespace {

void check(int r, const char* what)
{
    if (r < 0)
        throw std::runtime_error(std::string(what) + ": " + std::error_code(-r, std::generic_category()).message());
}

} // namespace

BusAttachment::BusAttachment(sd_event* event, sdbus::IConnection& connection) : event_(event), connection_(connection)
{
    const auto poll = connection_.getEventLoopPollData();
    check(sd_event_add_io(event_, &io_, poll.fd, static_cast<uint32_t>(poll.events), &BusAttachment::onIo, this),
          "sd_event_add_io(bus)");
    check(sd_event_source_set_prepare(io_, &BusAttachment::onPrepare), "sd_event_source_set_prepare(bus)");
    check(sd_event_add_time(event_, &timer_, CLOCK_MONOTONIC, UINT64_MAX, 0, &BusAttachment::onTimer, this),
          "sd_event_add_time(bus)");
    check(sd_event_source_set_enabled(timer_, SD_EVENT_OFF), "sd_event_source_set_enabled(bus timer)");
}

BusAttachment::~BusAttachment()
{
    sd_event_source_disable_unref(timer_);
    sd_event_source_disable_unref(io_);
}

int BusAttachment::onPrepare(sd_event_source*, void* userdata)
{
    auto* self = static_cast<BusAttachment*>(userdata);
    const auto poll = self->connection_.getEventLoopPollData();
    sd_event_source_set_io_events(self->io_, static_cast<uint32_t>(poll.events));
    if (poll.timeout_usec == UINT64_MAX) {
        sd_event_source_set_enabled(self->timer_, SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(self->timer_, poll.timeout_usec);
        sd_event_source_set_enabled(self->timer_, SD_EVENT_ONESHOT);
    }
    return 0;
}

int BusAttachment::onIo(sd_event_source*, int, uint32_t, void* userdata)
{
    static_cast<BusAttachment*>(userdata)->dispatch();
    return 0;
}

int BusAttachment::onTimer(sd_event_source*, uint64_t, void* userdata)
{
    static_cast<BusAttachment*>(userdata)->dispatch();
    return 0;
}

void BusAttachment::dispatch()
{
    try {
        while (connection_.processPendingRequest()) {
        }
    } catch (const std::exception& e) {
        // The bus is gone (dbus-daemon restarted or stopped): nothing is served any
        // more, so stop and let systemd start us again.
        log::error(std::string("lost the D-Bus connection, stopping: ") + e.what());
        sd_event_exit(event_, -ECONNRESET);
    }
}

#endif

} // namespace gpuswap
