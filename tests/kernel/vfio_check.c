// SPDX-License-Identifier: GPL-2.0-or-later
/* vfio_check GROUP DEVICE [HOLD_SECONDS]
 * Uses an IOMMU group as QEMU does: opens the container and /dev/vfio/GROUP, reports
 * whether the group is viable, attaches it (type1 IOMMU), gets the device's fd, and
 * with HOLD_SECONDS keeps all of it open that long. Prints "VFIO viable=..." lines;
 * exits 0 when it got the device fd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what)
{
    printf("VFIO %s failed: %s (%s)\n", what, strerrorname_np(errno), strerror(errno));
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vfio_check GROUP DEVICE [HOLD_SECONDS]\n");
        return 2;
    }
    char path[64];
    snprintf(path, sizeof path, "/dev/vfio/%s", argv[1]);
    int container = open("/dev/vfio/vfio", O_RDWR);
    if (container < 0)
        return fail("open /dev/vfio/vfio");
    int group = open(path, O_RDWR);
    if (group < 0)
        return fail("open group");
    struct vfio_group_status status = {.argsz = sizeof status};
    if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0)
        return fail("GROUP_GET_STATUS");
    printf("VFIO viable=%d\n", (status.flags & VFIO_GROUP_FLAGS_VIABLE) ? 1 : 0);
    fflush(stdout);
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0)
        return fail("GROUP_SET_CONTAINER");
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
        return fail("SET_IOMMU");
    int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[2]);
    if (device < 0)
        return fail("GROUP_GET_DEVICE_FD");
    printf("VFIO device-fd=ok\n");
    fflush(stdout);
    if (argc > 3) {
        printf("VFIO holding\n");
        fflush(stdout);
        sleep((unsigned)atoi(argv[3]));
    }
    return 0;
}
