// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <sdbus-c++/IConnection.h>

#include <cstdint>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// Drives the connection from the sd-event loop. sdbus-c++ 2 does it itself
// (attachSdEventLoop); 1.2 has no such call, so here it is done as sd_bus_attach_event()
// does for plain sd-bus. The poll data is re-read before every poll: after a send the
// bus wants POLLOUT, after a synchronous call messages may already be queued, and
// pending calls add deadlines.
class BusAttachment {
public:
    BusAttachment(sd_event* event, sdbus::IConnection& connection);
    ~BusAttachment();
    BusAttachment(const BusAttachment&) = delete;
    BusAttachment& operator=(const BusAttachment&) = delete;

private:
    static int onPrepare(sd_event_source* source, void* userdata);
    static int onIo(sd_event_source* source, int fd, uint32_t revents, void* userdata);
    static int onTimer(sd_event_source* source, uint64_t usec, void* userdata);
    void dispatch();

    sd_event* event_;
    sdbus::IConnection& connection_;
    sd_event_source* io_ = nullptr;
    sd_event_source* timer_ = nullptr;
};

} // namespace gpuswap
