#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The system suite's checks, run inside the guest by gpuswap-system-test.service with
# systemd as PID 1 and nothing mocked. "@@" lines go to the serial console and to
# out/test.log on the work share; the last part powers off with a VM running, and the
# host reads the journal of that shutdown (out/shutdown-journal.txt).
set -u
OUT=/run/gs/work/out S=/usr/local/lib/gpuswap-system P=/sys/bus/pci
mkdir -p $OUT; : > $OUT/test.log
echo 1 > /run/gs/exit-code          # a crash of this script is a failure (exit-status)
FAILS=()
up() { cut -d' ' -f1 /proc/uptime; }
# The file first: if journald stopped reading the service's output, the line is still there.
say() { local line; line="@@$* t=$(up)"; echo "$line" >> $OUT/test.log; echo "$line"; }
expect() {  # what, wanted, got
    if [ "$2" = "$3" ]; then say "OK $1 = $3"; else say "FAIL $1: want [$2] got [$3]"; FAILS+=("$1"); fi
}
expect_match() {  # what, extended regex, got
    if grep -qE -- "$2" <<<"$3"; then say "OK $1"; else say "FAIL $1: want /$2/ got [$3]"; FAILS+=("$1"); fi
}
since() { awk -v a="$(up)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
timed() {  # label, command...: runs it, prints its time, returns its status
    local label=$1 t; shift; t=$(up)
    "$@" >> $OUT/commands.log 2>&1; local rc=$?
    say "TIME $label $(since "$t") s (rc $rc)"; return $rc
}
driver() { local l; l=$(readlink $P/devices/$1/driver) && basename "$l" || echo none; }
drivers() { echo "$(driver $GPU) $(driver $AUDIO)"; }
dm_pid() { systemctl show -p MainPID --value display-manager.service; }
dm_cards() {  # the DRM cards the display manager holds open
    local pid; pid=$(dm_pid); [ "$pid" != 0 ] || { echo 0; return; }
    ls -l /proc/$pid/fd 2>/dev/null | grep -c '/dev/dri/card'
}
virsh() { command virsh -c qemu:///system "$@"; }
qemu_holds_group() {  # domain: does its QEMU hold /dev/vfio/<group>?
    local pid; pid=$(cat /run/libvirt/qemu/$1.pid 2>/dev/null) || { echo "no pid"; return; }
    ls -l /proc/$pid/fd 2>/dev/null | grep -q "/dev/vfio/$GROUP\$" && echo yes || echo no
}
wait_for() {  # seconds, command...: until the command succeeds (what a user watching would do)
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.2; done
}
is_active() { [ "$(systemctl is-active "$1")" = "$2" ]; }
host_drivers_back() { [ "$(drivers)" = "bochs-drm snd_hda_intel" ]; }

# The checks end at about t=200 s (t=250 s in CI). A hang anywhere (a virsh that never
# returns, a hook holding libvirtd's domain lock) must end in a report of what waits for
# what, and soon: at t=600 s hang-report writes it and ends the guest.
WATCHDOG_AT=600
( sleep $(( WATCHDOG_AT - $(up | cut -d. -f1) )) && $S/hang-report $OUT $$ > /dev/null 2>&1 ) &
watchdog=$!
say "START kernel=$(uname -r) root=$(findmnt -no FSTYPE /)"
expect "PID 1" systemd "$(ps -p 1 -o comm=)"
state=$(systemctl is-system-running --wait)
expect "systemctl is-system-running" running "$state"
[ "$state" = running ] || systemctl --failed --no-legend --plain | sed 's/^/@@FAILED-UNIT /' | tee -a $OUT/test.log
say "BOOT $(systemd-analyze time | head -1)"

# The devices: the GPU (bochs-display) and its audio function, one slot, one group.
udevadm settle --timeout=60
AUDIO=; for d in $P/devices/*; do [ "$(cat $d/vendor):$(cat $d/device)" = 0x8086:0x293e ] && AUDIO=${d##*/}; done
GPU=${AUDIO%.1}.0 GROUP=$(basename "$(readlink $P/devices/$GPU/iommu_group)")
say "DEVICES GPU=$GPU ($(driver $GPU)) audio=$AUDIO ($(driver $AUDIO)) group=$GROUP"
expect "host drivers at boot" "bochs-drm snd_hda_intel" "$(drivers)"
expect "vfio_pci at boot" absent "$([ -d /sys/module/vfio_pci ] && echo loaded || echo absent)"

# --- installed the way a user installs it: the Debian package ----------------------------
# This machine is a container image whose policy-rc.d forbids starting services; a real
# Debian system has none, and the package's scripts must be seen as they run there.
rm -f /usr/sbin/policy-rc.d
# man-db's trigger would re-index every manual page of the shared root over 9p: minutes.
rm -f /var/lib/man-db/auto-update
timed "dpkg -i gpuswap" env DEBIAN_FRONTEND=noninteractive dpkg -i /run/gs/work/gpuswap_*.deb
expect "dpkg -i rc" 0 $?
expect "group gpuswap" gpuswap "$(getent group gpuswap | cut -d: -f1)"
sed -e "s/@GPU@/$GPU/" -e "s/@AUDIO@/$AUDIO/" $S/gpuswapd.json > /etc/gpuswap/gpuswapd.json

# --- the display manager: a DRM client holding every card, aliased as gdm is --------------
systemctl enable gpuswap-test-dm.service >> $OUT/commands.log 2>&1
timed "start display-manager.service" systemctl start display-manager.service
expect "display manager" active "$(systemctl is-active display-manager.service)"
expect "cards the display manager holds" 2 "$(dm_cards)"

# --- 1. bus activation -------------------------------------------------------------------
expect "gpuswapd before any call" inactive "$(systemctl is-active gpuswapd.service)"
timed "busctl introspect (bus activation)" busctl introspect org.gpuswap1 /org/gpuswap1
expect "gpuswapd after busctl introspect" active "$(systemctl is-active gpuswapd.service)"
expect_match "introspection shows PrepareVM" '\.PrepareVM +method' "$(busctl introspect org.gpuswap1 /org/gpuswap1)"
say "EXPOSURE $(systemd-analyze security gpuswapd.service 2>/dev/null | tail -1)"

# --- libvirtd, started after the package installed its hook ------------------------------
systemd-sysusers /usr/lib/sysusers.d/gpuswap-system-libvirt.conf
timed "start libvirtd" systemctl start libvirtd.service
expect "libvirtd" active "$(systemctl is-active libvirtd.service)"
# Debian's libvirt-daemon-system enables libvirt-guests (multi-user.target, which this
# guest does not reach): at the poweroff it shuts running domains down (ON_SHUTDOWN=shutdown);
# the package's drop-in makes libvirtd wait for it, so their release hooks run.
timed "start libvirt-guests" systemctl start libvirt-guests.service
expect "libvirt-guests" active "$(systemctl is-active libvirt-guests.service)"
expect "the package orders libvirt-guests after libvirtd" yes \
    "$(systemctl show -p After --value libvirt-guests.service | grep -qw libvirtd.service && echo yes || echo no)"
B=${GPU#*:}; B=${B%%:*}; SLOT=${GPU##*:}; SLOT=${SLOT%.*}
# gs-metadata and gs-keep have no profile in gpuswapd.json: their <metadata> is their profile.
profile() { echo "<metadata><gpuswap:profile xmlns:gpuswap=\"https://gpuswap.org/xmlns/profile/1\">$1</gpuswap:profile></metadata>"; }
for domain in gs-unmanaged:no gs-managed:yes gs-metadata:no gs-keep:no; do
    name=${domain%:*} managed=${domain#*:} metadata=
    [ $name = gs-metadata ] && metadata=$(profile '<gpuswap:holders>wait</gpuswap:holders>')
    [ $name = gs-keep ] && metadata=$(profile '<gpuswap:display_manager>keep</gpuswap:display_manager>')
    sed -e "s/@NAME@/$name/" -e "s/@MANAGED@/$managed/" -e "s/@BUS@/$B/" -e "s/@SLOT@/$SLOT/" \
        -e "s|@METADATA@|$metadata|" -e "s|@GUEST@|$S/acpi-guest|" $S/domain.xml > /run/gs/$name.xml
    timed "virsh define $name" virsh define /run/gs/$name.xml
done

# --- 3./4./5. virsh start, then destroy or shutdown; unmanaged and managed hostdevs -------
domain_state() { virsh domstate "$1" 2>&1 | head -1; }
domain_off() { [ "$(domain_state "$1")" = "shut off" ]; }
guest_listens() { grep -qs '^ready' "/run/gs/$1.serial"; }
wait_until_guest_listens() {  # domain, its start time: a press before this is lost
    local ready=yes
    wait_for 120 guest_listens "$1" || ready=no
    expect "$1: the guest listens to the power button (its serial port says ready)" yes "$ready"
    say "TIME $1: guest ready $(since "$2") s after virsh start"
}
hand_over_with_virsh() {  # domain, how it ends: destroy, or shutdown (the guest powers off)
    local name=$1 end=$2 before started t; before=$(dm_pid) started=$(up)
    timed "virsh start $name (hook: PrepareVM)" virsh start "$name"
    expect "$name: virsh start rc" 0 $?
    expect "$name: devices while running" "vfio-pci vfio-pci" "$(drivers)"
    expect "$name: domain state" running "$(domain_state "$name")"
    expect "$name: nested QEMU holds /dev/vfio/$GROUP" yes "$(qemu_holds_group "$name")"
    expect "$name: display manager while running" active "$(systemctl is-active display-manager.service)"
    expect "$name: display manager was restarted" yes "$([ "$(dm_pid)" != "$before" ] && echo yes || echo no)"
    expect "$name: cards the display manager holds while running" 1 "$(dm_cards)"
    expect "$name: modprobe@vfio_pci after its job" inactive "$(systemctl is-active modprobe@vfio_pci.service)"
    if [ "$end" = destroy ]; then
        timed "virsh destroy $name (hook: ReleaseVM)" virsh destroy "$name"
    else
        # The guest powers off on the ACPI power button; libvirtd sees QEMU exit by itself
        # and runs the release hook.
        wait_until_guest_listens "$name" "$started"
        t=$(up)
        timed "virsh shutdown $name" virsh shutdown "$name"
        wait_for 60 domain_off "$name" && wait_for 60 host_drivers_back
        say "TIME virsh shutdown $name until shut off (hook: ReleaseVM) $(since "$t") s"
        expect "$name: domain state after shutdown" "shut off" "$(domain_state "$name")"
    fi
    expect "$name: devices after $end" "bochs-drm snd_hda_intel" "$(drivers)"
    expect "$name: DRM card node back" yes "$(ls $P/devices/$GPU/drm 2>/dev/null | grep -q '^card' && ls /dev/dri/by-path/ | grep -q "pci-$GPU-card" && echo yes || echo no)"
    expect "$name: display manager after $end" active "$(systemctl is-active display-manager.service)"
    expect "$name: cards the display manager holds after $end" 2 "$(dm_cards)"
}
hand_over_with_virsh gs-unmanaged destroy
hand_over_with_virsh gs-managed shutdown

# Zero configuration: a profile in the domain's metadata only.
hand_over_with_virsh gs-metadata destroy

# "keep" on a GPU that drives a screen: the kernel's DRM console lit its connector up
# (drm/cardN/cardN-Virtual-1/enabled), so the start is refused and nothing moves.
before=$(dm_pid)
out=$(virsh start gs-keep 2>&1); rc=$?
say "INFO virsh start gs-keep: rc $rc $(tr '\n' ' ' <<<"$out")"
expect "gs-keep: virsh start refused" 1 "$rc"
expect_match "gs-keep: the reason" 'drives a screen \(card[0-9]+-Virtual-1 enabled\)' "$out"
expect "gs-keep: devices unchanged" "bochs-drm snd_hda_intel" "$(drivers)"
expect "gs-keep: display manager untouched" "$before" "$(dm_pid)"

# The journal: the whole hand-over by VM name, and the catalog's explanation (installed
# by the package; dpkg's trigger on the catalog directory rebuilt journald's database).
expect "journalctl GPUSWAP_VM=gs-unmanaged finds the steps" yes \
    "$(journalctl -b GPUSWAP_VM=gs-unmanaged GPUSWAP_STEP=1 -o cat | grep -q 'stop display-manager.service' && echo yes || echo no)"
expect_match "journalctl -x explains a finished operation" 'The operation release:gs-unmanaged succeeded' \
    "$(journalctl -b -x MESSAGE_ID=eb8cc69534be4841a7d6fcc16ae5d629 GPUSWAP_VM=gs-unmanaged --no-pager)"

# --- 6. a group member in a logind session, and a user outside the group ------------------
useradd -m -G gpuswap gs-member; useradd -m gs-outsider
# su -l on a terminal (script gives it one), as a user logs in: pam_systemd opens a logind
# session of class "user" (without a terminal it would be "background").
as_user() { script -qec "su -l $1 -c '$2'" /dev/null >> $OUT/commands.log 2>&1; }
session=$(script -qec "su -l gs-member -c 'loginctl show-session \$XDG_SESSION_ID -p Class -p Active -p Remote | cat'" /dev/null 2>&1 | tr -d '\r' | sort | paste -sd' ')
expect "gs-member's logind session" "Active=yes Class=user Remote=no" "$session"
timed "gpuswapctl prepare gs-cli as gs-member" as_user gs-member 'gpuswapctl --no-ask-password prepare gs-cli'
expect "gs-member: prepare rc" 0 $?
expect "gs-member: devices after prepare" "vfio-pci vfio-pci" "$(drivers)"
timed "gpuswapctl release gs-cli as gs-member" as_user gs-member 'gpuswapctl --no-ask-password release gs-cli'
expect "gs-member: release rc" 0 $?
expect "gs-member: devices after release" "bochs-drm snd_hda_intel" "$(drivers)"
out=$(script -qec "su -l gs-outsider -c 'gpuswapctl --no-ask-password prepare gs-cli'" /dev/null 2>&1); rc=$?
out=$(tr -d '\r' <<<"$out")
say "INFO gs-outsider: $out"
expect "gs-outsider: prepare rc (not authorized)" 3 "$rc"
expect "gs-outsider: devices unchanged" "bochs-drm snd_hda_intel" "$(drivers)"
expect "gs-outsider: display manager untouched" active "$(systemctl is-active display-manager.service)"

# --- 7. gpuswapd killed, then stopped, in the middle of a prepare -------------------------
# A display manager that takes 5 s to stop holds the prepare in its first step.
mkdir -p /run/systemd/system/gpuswap-test-dm.service.d
printf '[Service]\nExecStop=/bin/sleep 5\n' > /run/systemd/system/gpuswap-test-dm.service.d/slow-stop.conf
systemctl daemon-reload
interrupted_prepare() {  # how: kill or stop
    local how=$1 pid_before client t
    pid_before=$(systemctl show -p MainPID --value gpuswapd.service)
    gpuswapctl prepare gs-cli > $OUT/prepare-$how.log 2>&1 & client=$!
    wait_for 20 is_active display-manager.service deactivating
    expect "$how: display manager stopping under the prepare" deactivating "$(systemctl is-active display-manager.service)"
    t=$(up)
    if [ "$how" = kill ]; then
        systemctl kill -s KILL gpuswapd.service
        wait $client; say "INFO prepare client after the kill: rc $? $(tr '\n' ' ' < $OUT/prepare-$how.log)"
        # The next call starts gpuswapd (if systemd's Restart= has not already), which
        # rolls the prepare back before it serves state-changing calls.
        timed "next call after SIGKILL (gpuswapctl status)" gpuswapctl status
        expect "kill: gpuswapd running again" yes "$(p=$(systemctl show -p MainPID --value gpuswapd.service); [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && echo yes || echo no)"
    else
        timed "systemctl stop gpuswapd during a prepare" systemctl stop gpuswapd.service
        wait $client; rc=$?
        say "INFO prepare client after the stop: rc $rc $(tr '\n' ' ' < $OUT/prepare-$how.log)"
        expect "stop: the prepare failed" 1 "$rc"
        expect "stop: gpuswapd" inactive "$(systemctl is-active gpuswapd.service)"
    fi
    wait_for 60 host_drivers_back
    wait_for 60 is_active display-manager.service active
    say "TIME $how: back to the state before the prepare $(since "$t") s"
    expect "$how: devices" "bochs-drm snd_hda_intel" "$(drivers)"
    expect "$how: display manager" active "$(systemctl is-active display-manager.service)"
    expect "$how: vfio group node gone" no "$([ -e /dev/vfio/$GROUP ] && echo yes || echo no)"
}
interrupted_prepare kill
interrupted_prepare stop
rm -r /run/systemd/system/gpuswap-test-dm.service.d; systemctl daemon-reload

journalctl -b -u gpuswapd.service -u libvirtd.service -u display-manager.service -o short-monotonic --no-pager \
    > $OUT/journal-before-poweroff.txt 2>&1

# --- 8. poweroff with a VM running: the host reads the journal of the shutdown ------------
started=$(up)
timed "virsh start gs-unmanaged before poweroff" virsh start gs-unmanaged
expect "before poweroff: devices" "vfio-pci vfio-pci" "$(drivers)"
expect "before poweroff: domain" running "$(domain_state gs-unmanaged)"
# What libvirt-guests' ON_SHUTDOWN=suspend would do: libvirt cannot save a domain with a
# passed-through PCI device, and the domain runs on.
out=$(virsh managedsave gs-unmanaged 2>&1); rc=$?
say "INFO virsh managedsave gs-unmanaged: rc $rc $(tr '\n' ' ' <<<"$out")"
expect "managedsave refused with a PCI hostdev" 1 "$rc"
expect "after the refused managedsave: domain" running "$(domain_state gs-unmanaged)"
wait_until_guest_listens gs-unmanaged "$started"   # libvirt-guests presses the button once
systemctl start gpuswap-system-journal.service
if [ ${#FAILS[@]} = 0 ]; then
    rm -f /run/gs/exit-code
    say "RESULT PASS"
else
    echo 2 > /run/gs/exit-code
    say "RESULT FAIL ${FAILS[*]}"
fi
kill $watchdog
say "POWEROFF"
sync
systemctl --no-block poweroff
