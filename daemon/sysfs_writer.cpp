#include "sysfs_writer.hpp"

#include "log.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace gpuswap {

SysfsWriter::SysfsWriter(sd_event* event)
{
    eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eventFd_ < 0)
        throw std::system_error(errno, std::generic_category(), "eventfd");
    const int r = sd_event_add_io(event, &source_, eventFd_, EPOLLIN, &SysfsWriter::onCompleted, this);
    if (r < 0) {
        ::close(eventFd_);
        throw std::system_error(-r, std::generic_category(), "sd_event_add_io(sysfs writer)");
    }
    worker_ = std::thread([this] { work(); });
}

SysfsWriter::~SysfsWriter()
{
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    // A write stuck in a driver cannot be interrupted; the process is ending anyway.
    if (busyWith().empty())
        worker_.join();
    else
        worker_.detach();
    sd_event_source_disable_unref(source_);
    ::close(eventFd_);
}

void SysfsWriter::write(const std::filesystem::path& path, const std::string& value, Done done)
{
    {
        const std::lock_guard lock(mutex_);
        pending_.push_back({path, value, std::move(done)});
    }
    wake_.notify_one();
}

std::string SysfsWriter::busyWith() const
{
    const std::lock_guard lock(mutex_);
    return busyWith_;
}

void SysfsWriter::work()
{
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        if (stopping_)
            return;
        Job job = std::move(pending_.front());
        pending_.pop_front();
        busyWith_ = job.path.string();
        lock.unlock();

        const int fd = ::open(job.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) {
            job.error = errno;
        } else {
            const ssize_t written = ::write(fd, job.value.data(), job.value.size());
            job.error = written < 0 ? errno : (static_cast<size_t>(written) == job.value.size() ? 0 : EIO);
            ::close(fd);
        }

        lock.lock();
        busyWith_.clear();
        completed_.push_back(std::move(job));
        const uint64_t one = 1;
        if (::write(eventFd_, &one, sizeof one) < 0)
            log::error("cannot wake the event loop after a sysfs write");
    }
}

int SysfsWriter::onCompleted(sd_event_source*, int, uint32_t, void* userdata)
{
    auto* self = static_cast<SysfsWriter*>(userdata);
    uint64_t count = 0;
    if (::read(self->eventFd_, &count, sizeof count) < 0 && errno != EAGAIN)
        log::error("reading the sysfs writer's eventfd failed");
    std::deque<Job> completed;
    {
        const std::lock_guard lock(self->mutex_);
        completed.swap(self->completed_);
    }
    for (Job& job : completed)
        job.done(job.error);
    return 0;
}

} // namespace gpuswap
