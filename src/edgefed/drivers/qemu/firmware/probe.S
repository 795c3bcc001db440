/* KVM usability probe (edgefed.drivers.qemu.accel): a 64 KiB "BIOS" that goes from real
   mode to long mode with paging, touches 4 MiB of RAM, runs a register loop, and reports
   each stage on COM1 (R, L, M, C). It exits QEMU through isa-debug-exit (port 0xf4):
   exit status (1<<1)|1 = 3. A usable KVM runs it in ~0.1 s, nearly all QEMU's start-up;
   a nested host without working virtualization aborts or crawls (~1 ms a page fault).

   Build (binutils; the result is loaded at 0xf0000, the top 64 KiB below 1 MiB):
     as --64 -o probe.o probe.S
     ld -m elf_x86_64 -Ttext=0xf0000 -e start16 --oformat binary -o probe.bin probe.o */
        .section .text
        .globl  start16
        .code16
base:
start16:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     $0x3f8, %dx
        mov     $'R', %al
        out     %al, %dx
        /* page tables in RAM: PML4 @0x1000, PDPT @0x2000, PD @0x3000 (512 x 2 MiB = 1 GiB) */
        cld
        mov     $0x1000, %di
        xor     %eax, %eax
        mov     $(3*4096/4), %ecx
        rep stosl
        movl    $0x2003, (0x1000)
        movl    $0x3003, (0x2000)
        mov     $0x3000, %di
        mov     $0x83, %eax          /* present | rw | PS */
        mov     $512, %ecx
1:      movl    %eax, (%di)
        movl    $0, 4(%di)
        add     $0x200000, %eax
        add     $8, %di
        dec     %ecx
        jnz     1b
        lgdtl   %cs:(gdtr - base)
        mov     %cr4, %eax
        or      $0x20, %eax          /* PAE */
        mov     %eax, %cr4
        mov     $0x1000, %eax
        mov     %eax, %cr3
        mov     $0xC0000080, %ecx    /* EFER.LME */
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax    /* PG | PE */
        mov     %eax, %cr0
        ljmpl   $0x08, $start64

        .code64
start64:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x3f8, %dx
        mov     $'L', %al
        out     %al, %dx
        /* touch 4 MiB from 4 MiB: one write per 4 KiB page, then a full pass */
        mov     $0x400000, %rdi
        mov     $(4*1024*1024/8), %rcx
        xor     %rax, %rax
        rep stosq
        mov     $0x3f8, %dx
        mov     $'M', %al
        out     %al, %dx
        /* register loop: 5 M iterations (~2 ms native, ~20 ms TCG) */
        mov     $5000000, %rcx
2:      dec     %rcx
        jnz     2b
        mov     $'C', %al
        out     %al, %dx
        mov     $'\n', %al
        out     %al, %dx
        mov     $1, %al
        out     %al, $0xf4
3:      hlt
        jmp     3b

        .balign 8
gdt:    .quad   0
        .quad   0x00AF9B000000FFFF   /* 0x08: 64-bit code, accessed */
        .quad   0x00CF93000000FFFF   /* 0x10: data, accessed */
gdtr:   .word   gdtr - gdt - 1
        .long   gdt

        .org    0xfff0
reset:  .byte 0xea
        .word start16 - base
        .word 0xf000
        .org    0x10000
