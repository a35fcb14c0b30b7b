// SPDX-License-Identifier: GPL-2.0-or-later
/* sound_holder NODE react|stubborn
 * Keeps an ALSA control node open through an unbind of its card, as desktop sound servers
 * do. "react" subscribes to the card's events and closes as soon as a read fails (the card
 * was disconnected: ENODEV), as PipeWire and PulseAudio do; "stubborn" ignores everything
 * and keeps the file until killed. Prints "holding" once the node is open, and with
 * "react" "closed after disconnect: ERRNO". */
#include <errno.h>
#include <fcntl.h>
#include <sound/asound.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        printf("open %s failed: %s\n", argv[1], strerror(errno));
        return 1;
    }
    const int react = strcmp(argv[2], "react") == 0;
    int subscribe = 1;
    if (react && ioctl(fd, SNDRV_CTL_IOCTL_SUBSCRIBE_EVENTS, &subscribe) < 0) {
        printf("subscribe failed: %s\n", strerror(errno));
        return 1;
    }
    printf("holding\n");
    fflush(stdout);
    if (!react)
        for (;;)
            pause();
    struct snd_ctl_event event;
    while (read(fd, &event, sizeof event) > 0)
        ;
    printf("closed after disconnect: %s\n", strerrorname_np(errno));
    fflush(stdout);
    close(fd);
    return 0;
}
