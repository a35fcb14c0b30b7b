// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>

namespace gpuswap {

// Bounded work for every caller: state-changing calls that are being authorized, wait in
// the queue or run hold a place; at most 4 from any one uid and 16 in all. uid 0 (the
// libvirt hook) is never turned away, so a flood of other users cannot keep a VM from
// starting.
class Admission {
public:
    static constexpr unsigned kPerUid = 4;
    static constexpr unsigned kTotal = 16;

    // The place is freed when the last copy of the ticket goes.
    using Ticket = std::shared_ptr<void>;

    // nullptr when the caller's share or the whole is taken.
    Ticket admit(uid_t uid);
    unsigned held() const { return total_; }

private:
    std::map<uid_t, unsigned> perUid_;
    unsigned total_ = 0;
    // Tickets may outlive this object at shutdown: they free through a weak link.
    std::shared_ptr<Admission*> self_ = std::make_shared<Admission*>(this);
};

} // namespace gpuswap
