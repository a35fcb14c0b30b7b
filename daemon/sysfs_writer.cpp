// SPDX-License-Identifier: GPL-2.0-or-later
#include "sysfs_writer.hpp"

#include "log.hpp"
#include "pci_device.hpp"
#include "text.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <system_error>

namespace gpuswap {

namespace {

// The child's whole life: only async-signal-safe calls, nothing allocated.
[[noreturn]] void writeAndExit(const char* path, const char* value, size_t size)
{
    // The bus socket and every other descriptor of the daemon must not outlive the
    // daemon in a child that the kernel keeps: the bus would think gpuswapd still runs.
    ::close_range(3, ~0U, 0);
    ::prctl(PR_SET_NAME, "gpuswapd-write", 0, 0, 0);
    int error = 0;
    const int fd = ::open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        error = errno;
    } else {
        const ssize_t written = ::write(fd, value, size);
        error = written < 0 ? errno : (static_cast<size_t>(written) == size ? 0 : EIO);
        ::close(fd);
    }
    ::_exit(error);
}

} // namespace

std::string kernelWaitOf(pid_t pid)
{
    // Kernel stacks are readable by root with CAP_SYS_ADMIN; wchan needs less.
    std::ifstream stack("/proc/" + std::to_string(pid) + "/stack");
    std::string frames;
    std::string line;
    for (int depth = 0; depth < 4 && std::getline(stack, line); ++depth) {
        // "[<0>] snd_card_free+0x6e/0x90 [snd]" -> "snd_card_free"
        const auto start = line.find("] ");
        std::string symbol = start == std::string::npos ? line : line.substr(start + 2);
        symbol = symbol.substr(0, symbol.find_first_of("+ "));
        if (!symbol.empty())
            frames += (frames.empty() ? "" : " < ") + symbol;
    }
    if (!frames.empty())
        return frames;
    const auto wchan = readAttribute("/proc/" + std::to_string(pid) + "/wchan");
    return wchan && *wchan != "0" ? *wchan : std::string();
}

SysfsWriter::SysfsWriter(sd_event* event, DeviceLocks& locks) : event_(event), locks_(locks) {}

SysfsWriter::~SysfsWriter()
{
    // A child stuck in the kernel cannot be ended; it is left to whoever reaps it after
    // this process is gone.
    for (Child& child : children_) {
        sd_event_source_disable_unref(child.source);
        ::close(child.pidfd);
    }
}

void SysfsWriter::write(const std::filesystem::path& path, const std::string& value, const PciAddress& device, Done done)
{
    const std::string pathText = path.string();
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::system_error(errno, std::generic_category(), "fork for a sysfs write");
    if (pid == 0)
        writeAndExit(pathText.c_str(), value.data(), value.size());

    // glibc 2.36's <sys/pidfd.h> lacks C linkage for C++: the system call itself. The
    // child is not reaped before its pidfd exists, so the pid cannot be reused meanwhile.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) {
        const int error = errno;
        // Without a pidfd nothing would tell when the child ends: wait for it here
        // rather than lose it (pidfd_open fails only without memory or on kernels < 5.3).
        ::waitpid(pid, nullptr, 0);
        throw std::system_error(error, std::generic_category(), "pidfd_open for a sysfs write");
    }
    Child& child = children_.emplace_back(Child{device, {path, value, pid, std::chrono::steady_clock::now()}, pidfd,
                                                nullptr, std::move(done), this});
    const int r = sd_event_add_io(event_, &child.source, pidfd, EPOLLIN, &SysfsWriter::onExit, &child);
    if (r < 0) {
        ::close(pidfd);
        children_.pop_back();
        throw std::system_error(-r, std::generic_category(), "sd_event_add_io(sysfs write)");
    }
    locks_.acquire(device);
}

int SysfsWriter::onExit(sd_event_source*, int, uint32_t, void* userdata)
{
    auto* child = static_cast<Child*>(userdata);
    SysfsWriter& self = *child->owner;
    int status = 0;
    int error = EIO;
    if (::waitpid(child->write.pid, &status, WNOHANG) == child->write.pid && WIFEXITED(status))
        error = WEXITSTATUS(status);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - child->write.started);
    log::debug("writing " + child->write.path.string() + " returned after " + std::to_string(took.count()) + " us",
               {{"DEVICE", child->device.str()}, {"WRITE_USEC", std::to_string(took.count())}});
    if (child->wedged)
        log::warning("writing " + child->write.path.string() + " returned after " +
                        secondsText(std::chrono::steady_clock::now() - child->write.started) + " (" +
                        (error == 0 ? std::string("success") : std::string(strerrorname_np(error))) + "); " +
                        child->device.str() + " can be used again: check it with gpuswapctl status",
                    {{"DEVICE", child->device.str()}});
    Done done = std::move(child->done);
    const PciAddress device = child->device;
    sd_event_source_disable_unref(child->source);
    ::close(child->pidfd);
    self.children_.remove_if([child](const Child& c) { return &c == child; });
    self.locks_.release(device);
    done(error);
    return 0;
}

void SysfsWriter::markWedged(const PciAddress& device)
{
    for (Child& child : children_)
        if (child.device == device)
            child.wedged = true;
}

std::optional<SysfsWriter::InFlight> SysfsWriter::inFlight(const PciAddress& device) const
{
    for (const Child& child : children_)
        if (child.device == device)
            return child.write;
    return std::nullopt;
}

std::string SysfsWriter::describe(const PciAddress& device) const
{
    const auto write = inFlight(device);
    if (!write)
        return {};
    std::string value = write->value;
    while (!value.empty() && value.back() == '\n')
        value.pop_back();
    const std::string wait = kernelWaitOf(write->pid);
    return "writing \"" + value + "\" to " + write->path.string() + " has not returned after " +
           secondsText(std::chrono::steady_clock::now() - write->started) + " (the writer, pid " + std::to_string(write->pid) +
           ", waits in the kernel" + (wait.empty() ? "" : " at " + wait) + ")";
}

} // namespace gpuswap
