// SPDX-License-Identifier: GPL-2.0-or-later
// The system guest's display manager: opens every DRM card there is, becomes DRM master
// of each (as a compositor does), says which it holds and by which driver, and keeps them
// open until SIGTERM.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

// From the kernel's include/uapi/drm/drm.h (the uapi headers are not installed here).
struct drm_version {
    int version_major, version_minor, version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};
#define DRM_IOCTL_VERSION _IOWR('d', 0x00, struct drm_version)
#define DRM_IOCTL_SET_MASTER _IO('d', 0x1e)

static volatile sig_atomic_t stop;
static void on_term(int signal_number) { (void)signal_number; stop = 1; }

int main(void)
{
    // SIGTERM stays blocked except inside sigsuspend(): it cannot slip in before the wait.
    sigset_t term, waiting;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &waiting);
    struct sigaction action = { .sa_handler = on_term };
    sigaction(SIGTERM, &action, NULL);
    DIR *dir = opendir("/dev/dri");
    struct dirent *entry;
    int held = 0;
    while (dir && (entry = readdir(dir))) {
        if (strncmp(entry->d_name, "card", 4) != 0)
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/dev/dri/%s", entry->d_name);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            printf("cannot open %s: %m\n", path);
            continue;
        }
        struct drm_version version = { .name = name, .name_len = sizeof name - 1 };
        ioctl(fd, DRM_IOCTL_VERSION, &version);
        int master = ioctl(fd, DRM_IOCTL_SET_MASTER, 0) == 0;
        printf("holding %s (driver %s)%s\n", path, name, master ? " as DRM master" : "");
        held++;
    }
    printf("holding %d card(s)\n", held);
    fflush(stdout);
    while (!stop)
        sigsuspend(&waiting);
    printf("SIGTERM: letting go of %d card(s)\n", held);
    return 0;
}
