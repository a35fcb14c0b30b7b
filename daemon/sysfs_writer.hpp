#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// Writes sysfs attributes on a worker thread. A write to unbind, bind, drivers_probe or
// resourceN_resize runs the driver's remove() or probe() inside write(): seconds on a
// real GPU, forever on a wedged one. The event loop never makes such a call; it gets
// the result back as an event and keeps serving meanwhile.
class SysfsWriter {
public:
    // errno of the open or write, 0 on success; called on the event loop.
    using Done = std::function<void(int error)>;

    explicit SysfsWriter(sd_event* event);
    ~SysfsWriter();
    SysfsWriter(const SysfsWriter&) = delete;
    SysfsWriter& operator=(const SysfsWriter&) = delete;

    // O_WRONLY|O_TRUNC and one write(): sysfs takes a value per write call, and a
    // shorter value must not leave stale bytes behind.
    void write(const std::filesystem::path& path, const std::string& value, Done done);

    // The write the worker is inside of, for messages about a hang ("" when idle).
    std::string busyWith() const;

private:
    struct Job {
        std::filesystem::path path;
        std::string value;
        Done done;
        int error = 0;
    };

    static int onCompleted(sd_event_source* source, int fd, uint32_t revents, void* userdata);
    void work();

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> pending_;
    std::deque<Job> completed_;
    std::string busyWith_;
    bool stopping_ = false;
    int eventFd_ = -1;
    sd_event_source* source_ = nullptr;
    std::thread worker_;
};

} // namespace gpuswap
