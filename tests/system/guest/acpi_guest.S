/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The nested domain's guest: a multiboot kernel that does what an OS does with the ACPI
 * power button, and nothing else. libvirt's "virsh shutdown" and libvirt-guests at the
 * host's poweroff press the button (QMP system_powerdown); QEMU's ICH9 sets PWRBTN_STS in
 * PM1_STS when PWRBTN_EN is set in PM1_EN (hw/acpi/core.c, acpi_pm1_evt_power_down), and
 * writing SLP_EN with SLP_TYP 0 to PM1_CNT powers the machine off (acpi_pm1_cnt_write).
 * The status is looked at on every timer tick (the firmware's PIT at 18.2 Hz through the
 * PIC), so the guest sleeps in hlt in between. q35 only: the PM base comes from the LPC
 * bridge's PMBASE register (00:1f.0, offset 0x40). A press before PWRBTN_EN is set is lost
 * (no status bit is set), as an OS that is still booting ignores the button: the guest
 * says "ready" on its first serial port once it listens, and the test presses only then. */
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0
        .set PWRBTN, 0x0100             /* PWRBTN_STS in PM1_STS, PWRBTN_EN in PM1_EN */
        .set SLP_EN, 0x2000             /* in PM1_CNT; SLP_TYP 0 is S5 in QEMU */
        .set COM1, 0x3f8                /* transmit register; QEMU's 16550 needs no setup */

        .text
        .code32
        .align 4
        .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

        .globl _start
_start:
        cli
        mov $stack_top, %esp
        mov $0x8000f840, %eax           /* config address: bus 0, device 31, function 0, 0x40 */
        mov $0xcf8, %dx
        out %eax, %dx
        mov $0xcfc, %dx
        in %dx, %eax
        and $0xff80, %eax
        mov %eax, pm_base

        mov $idt, %edi                  /* every vector goes to tick: only the timer comes */
        mov $256, %ecx
        mov %cs, %bx
1:      mov $tick, %eax
        mov %ax, (%edi)
        mov %bx, 2(%edi)
        movw $0x8e00, 4(%edi)           /* present, ring 0, 32-bit interrupt gate */
        shr $16, %eax
        mov %ax, 6(%edi)
        add $8, %edi
        loop 1b
        lidt idt_pointer

        mov pm_base, %edx
        add $2, %edx                    /* PM1_EN */
        mov $PWRBTN, %ax
        out %ax, %dx

        mov $ready, %esi
        mov $COM1, %dx
4:      lodsb
        test %al, %al
        jz 5f
        out %al, %dx
        jmp 4b
5:      sti
2:      hlt
        jmp 2b

tick:   push %eax
        push %edx
        mov pm_base, %edx               /* PM1_STS */
        in %dx, %ax
        test $PWRBTN, %ax
        jz 3f
        add $4, %edx                    /* PM1_CNT */
        mov $SLP_EN, %ax
        out %ax, %dx
3:      mov $0x20, %al                  /* end of interrupt, both PICs */
        out %al, $0xa0
        out %al, $0x20
        pop %edx
        pop %eax
        iret

        .data
        .align 4
idt_pointer:
        .word 256 * 8 - 1
        .long idt
pm_base:
        .long 0
ready:
        .asciz "ready\n"

        .bss
        .align 8
idt:    .space 256 * 8
        .space 4096
stack_top:
