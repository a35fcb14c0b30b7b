#pragma once

#include <sdbus-c++/IConnection.h>

#include <cstdint>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// Drives an sdbus-c++ 1.2 connection from an sd-event loop, as sd_bus_attach_event()
// does for plain sd-bus (1.2 has no attachSdEventLoop()). The poll data is re-read
// before every poll: after a send the bus wants POLLOUT, after a synchronous call
// messages may already be queued, and pending calls add deadlines.
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
