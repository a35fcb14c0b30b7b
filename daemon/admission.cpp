// SPDX-License-Identifier: GPL-2.0-or-later
#include "admission.hpp"

namespace gpuswap {

Admission::Ticket Admission::admit(uid_t uid)
{
    if (uid == 0)
        return std::make_shared<int>(0);
    unsigned& mine = perUid_[uid];
    if (mine >= kPerUid || total_ >= kTotal) {
        if (mine == 0)
            perUid_.erase(uid);
        return nullptr;
    }
    ++mine;
    ++total_;
    std::weak_ptr<Admission*> owner = self_;
    // The pointer only makes the ticket non-null; the deleter frees the place.
    return Ticket(static_cast<void*>(self_.get()), [owner, uid](void*) {
        const auto self = owner.lock();
        if (!self)
            return;
        Admission& admission = **self;
        --admission.total_;
        if (--admission.perUid_[uid] == 0)
            admission.perUid_.erase(uid);
    });
}

} // namespace gpuswap
