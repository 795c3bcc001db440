/* volio: one I/O pattern on a file or block device, timed per operation.
 *
 * bench/volume_io.py builds it (gcc, static, no libc: a few KiB, so that it fits in a
 * guest's user data) and runs the same binary inside the tiny guest against the volume
 * and on the host against the volume's raw file: the same code and system calls on both
 * sides. busybox dd cannot do it: Debian's busybox prints no timing and has no random
 * pattern, and /proc/uptime counts in 10 ms.
 *
 *   volio OP PATH REGION BS OPS SEED FLAGS
 *   OP     seqwrite | seqread | randwrite | randread
 *   REGION bytes from offset 0 the operations stay within
 *   BS     bytes per operation (at most 8 MiB; a multiple of 4096 with "direct")
 *   OPS    operations; 0 = REGION / BS (sequential: the whole region once)
 *   SEED   of the random offsets (xorshift64), block-aligned within REGION
 *   FLAGS  comma-separated, or "-": direct (O_DIRECT), dsync (O_DSYNC: every write
 *          durable when it returns), fsync (one fsync after the last write, counted in
 *          the total but in no operation's latency), qdN (N operations in flight, 2 to
 *          64, through Linux AIO: io_submit, io_getevents; each in flight has its own
 *          buffer, so N * BS is at most 8 MiB; without it, one pread or pwrite at a time)
 *
 * With qdN the operations are issued in the same order (offsets) as without; a slot
 * whose operation completes is given the next one at once. An operation's latency runs
 * from just before its io_submit to the return of the io_getevents that reaped it.
 * Linux AIO is asynchronous with O_DIRECT (on a block device, as in the guest); on a
 * file through the page cache io_submit does the work before it returns.
 *
 * One line on stdout, key=value, times in nanoseconds (CLOCK_MONOTONIC):
 *   op=randread bs=4096 qd=1 ops=2000 bytes=8192000 total_ns=... sync_ns=... min_ns=...
 *   p50_ns=... p90_ns=... p99_ns=... max_ns=... mean_ns=...
 * or "error=<what> errno=<n>" and exit status 1.
 */

typedef unsigned long u64;
typedef long i64;

#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_pread64 17
#define SYS_pwrite64 18
#define SYS_fsync 74
#define SYS_io_setup 206
#define SYS_io_destroy 207
#define SYS_io_getevents 208
#define SYS_io_submit 209
#define SYS_clock_gettime 228
#define SYS_exit_group 231
#define O_RDONLY 0
#define O_WRONLY 1
#define O_DSYNC 010000
#define O_DIRECT 040000
#define CLOCK_MONOTONIC 1
#define MAX_BS (8 << 20) /* in .bss: not in the binary, touched up to BS only */
#define MAX_OPS 65536
#define MAX_QD 64
#define IOCB_CMD_PREAD 0
#define IOCB_CMD_PWRITE 1
#define EINTR 4

static i64 sys3(i64 n, i64 a, i64 b, i64 c) {
    i64 r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static i64 sys4(i64 n, i64 a, i64 b, i64 c, i64 d) {
    register i64 r10 __asm__("r10") = d;
    i64 r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static i64 sys5(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e) {
    register i64 r10 __asm__("r10") = d;
    register i64 r8 __asm__("r8") = e;
    i64 r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return r;
}

/* The kernel's <linux/aio_abi.h>, x86-64 (little-endian: aio_key before aio_rw_flags). */
struct iocb {
    u64 aio_data;
    unsigned int aio_key, aio_rw_flags;
    unsigned short aio_lio_opcode;
    short aio_reqprio;
    unsigned int aio_fildes;
    u64 aio_buf, aio_nbytes;
    i64 aio_offset;
    u64 aio_reserved2;
    unsigned int aio_flags, aio_resfd;
};
struct io_event {
    u64 data, obj;
    i64 res, res2;
};

static char buf[MAX_BS] __attribute__((aligned(4096)));
static unsigned int lat[MAX_OPS];
static char out[512];
static int outn;

static void put(const char *s) {
    while (*s && outn < (int)sizeof(out) - 1) out[outn++] = *s++;
}

static void putu(u64 v) {
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i && outn < (int)sizeof(out) - 1) out[outn++] = tmp[--i];
}

static void field(const char *key, u64 v) {
    put(" ");
    put(key);
    put("=");
    putu(v);
}

static void flush_line(void) {
    out[outn++] = '\n';
    sys3(SYS_write, 1, (i64)out, outn);
    outn = 0;
}

static __attribute__((noreturn)) void quit(int status) {
    sys3(SYS_exit_group, status, 0, 0);
    for (;;) {
    }
}

static __attribute__((noreturn)) void fail(const char *what, i64 err) {
    outn = 0;
    put("error=");
    put(what);
    field("errno", (u64)-err);
    flush_line();
    quit(1);
}

static u64 now_ns(void) {
    i64 ts[2];
    sys3(SYS_clock_gettime, CLOCK_MONOTONIC, (i64)ts, 0);
    return (u64)ts[0] * 1000000000ul + (u64)ts[1];
}

static u64 number(const char *s) {
    u64 v = 0;
    if (!*s) fail("number", -22);
    for (; *s; s++) {
        if (*s < '0' || *s > '9') fail("number", -22);
        v = v * 10 + (u64)(*s - '0');
    }
    return v;
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static int has_flag(const char *flags, const char *name) {
    /* flags is "a,b,c": is one of them exactly name? */
    while (*flags) {
        const char *n = name;
        while (*n && *flags == *n) flags++, n++;
        if (!*n && (*flags == ',' || !*flags)) return 1;
        while (*flags && *flags != ',') flags++;
        if (*flags == ',') flags++;
    }
    return 0;
}

static void sort(unsigned int *a, u64 n) { /* Shell sort: n is at most MAX_OPS */
    u64 gap, i, j;
    for (gap = n / 2; gap; gap /= 2)
        for (i = gap; i < n; i++) {
            unsigned int v = a[i];
            for (j = i; j >= gap && a[j - gap] > v; j -= gap) a[j] = a[j - gap];
            a[j] = v;
        }
}

static u64 flag_number(const char *flags, const char *prefix) {
    /* the N of a flag "<prefix>N" in flags (0: no such flag) */
    while (*flags) {
        const char *p = prefix;
        while (*p && *flags == *p) flags++, p++;
        if (!*p && *flags >= '0' && *flags <= '9') {
            u64 v = 0;
            while (*flags >= '0' && *flags <= '9') v = v * 10 + (u64)(*flags++ - '0');
            if (*flags == ',' || !*flags) return v;
        }
        while (*flags && *flags != ',') flags++;
        if (*flags == ',') flags++;
    }
    return 0;
}

static u64 seed;
static u64 blocks;
static int random;

static u64 block_of(u64 i) { /* the i-th operation's block: in order, or xorshift64 */
    if (!random) return i;
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return seed % blocks;
}

static struct iocb cbs[MAX_QD];
static struct iocb *batch[MAX_QD];
static struct io_event events[MAX_QD];
static u64 issued[MAX_QD];

static u64 run_queued(i64 fd, int write, u64 bs, u64 ops, u64 qd) {
    /* ops operations, qd in flight; returns the sum of their latencies */
    u64 ctx = 0, next = 0, done = 0, sum = 0, n = 0;
    i64 r = sys3(SYS_io_setup, (i64)qd, (i64)&ctx, 0);
    if (r < 0) fail("io_setup", r);
    for (u64 slot = 0; slot < qd; slot++) {
        cbs[slot].aio_data = slot;
        cbs[slot].aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
        cbs[slot].aio_fildes = (unsigned int)fd;
        cbs[slot].aio_buf = (u64)(buf + slot * bs);
        cbs[slot].aio_nbytes = bs;
    }
    for (u64 slot = 0; slot < qd && slot < ops; slot++) batch[n++] = &cbs[slot];
    while (done < ops) {
        if (n) {
            u64 t = now_ns();
            for (u64 j = 0; j < n; j++) {
                batch[j]->aio_offset = (i64)(block_of(next++) * bs);
                issued[batch[j]->aio_data] = t;
            }
            r = sys3(SYS_io_submit, (i64)ctx, (i64)n, (i64)batch);
            if (r < 0) fail("io_submit", r);
            if ((u64)r != n) fail("io_submit", -11);
            n = 0;
        }
        r = sys5(SYS_io_getevents, (i64)ctx, 1, (i64)qd, (i64)events, 0);
        if (r == -EINTR) continue;
        if (r < 0) fail("io_getevents", r);
        u64 t = now_ns();
        for (i64 j = 0; j < r; j++) {
            struct io_event *e = &events[j];
            if (e->res < 0) fail(write ? "pwrite" : "pread", e->res);
            if ((u64)e->res != bs) fail("short", -5);
            u64 took = t - issued[e->data];
            lat[done++] = took > 0xffffffffu ? 0xffffffffu : (unsigned int)took;
            sum += took;
            if (next + n < ops) batch[n++] = &cbs[e->data];
        }
    }
    sys3(SYS_io_destroy, (i64)ctx, 0, 0);
    return sum;
}

static u64 rank(u64 n, u64 per_mille) { /* nearest rank, 1-based, as an index */
    u64 r = (n * per_mille + 999) / 1000;
    return r ? r - 1 : 0;
}

int cmain(long argc, char **argv) {
    if (argc != 8) fail("usage", -22);
    const char *op = argv[1], *path = argv[2], *flags = argv[7];
    u64 region = number(argv[3]), bs = number(argv[4]), ops = number(argv[5]);
    seed = number(argv[6]) * 2654435761ul + 88172645463325252ul;
    int write = same(op, "seqwrite") || same(op, "randwrite");
    random = same(op, "randwrite") || same(op, "randread");
    if (!write && !random && !same(op, "seqread")) fail("op", -22);
    u64 qd = flag_number(flags, "qd");
    if (!qd) qd = 1;
    if (qd > MAX_QD || !bs || bs * qd > MAX_BS || region < bs) fail("size", -22);
    blocks = region / bs;
    if (!ops) ops = blocks;
    if (ops > MAX_OPS || (!random && ops > blocks)) fail("ops", -22);
    int mode = write ? O_WRONLY : O_RDONLY;
    if (has_flag(flags, "direct")) mode |= O_DIRECT;
    if (has_flag(flags, "dsync")) mode |= O_DSYNC;
    i64 fd = sys3(SYS_open, (i64)path, mode, 0);
    if (fd < 0) fail("open", fd);
    for (u64 i = 0; i < bs; i++) { /* data that is not zeros */
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        buf[i] = (char)seed;
    }
    for (u64 i = bs, x = seed; i < bs * qd; i++) { /* the other slots: offsets unchanged */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (char)x;
    }
    u64 started = now_ns(), sum = 0;
    if (qd > 1) {
        sum = run_queued(fd, write, bs, ops, qd);
    } else {
        for (u64 i = 0; i < ops; i++) {
            u64 block = block_of(i);
            u64 t0 = now_ns();
            i64 n = sys4(write ? SYS_pwrite64 : SYS_pread64, fd, (i64)buf, (i64)bs,
                         (i64)(block * bs));
            u64 took = now_ns() - t0;
            if (n < 0) fail(write ? "pwrite" : "pread", n);
            if ((u64)n != bs) fail("short", -5);
            lat[i] = took > 0xffffffffu ? 0xffffffffu : (unsigned int)took;
            sum += took;
        }
    }
    u64 synced = now_ns();
    if (write && has_flag(flags, "fsync")) {
        i64 r = sys3(SYS_fsync, fd, 0, 0);
        if (r < 0) fail("fsync", r);
    }
    u64 finished = now_ns();
    sys3(SYS_close, fd, 0, 0);
    sort(lat, ops);
    put("op=");
    put(op);
    field("bs", bs);
    field("qd", qd);
    field("ops", ops);
    field("bytes", bs * ops);
    field("total_ns", finished - started);
    field("sync_ns", finished - synced);
    field("min_ns", lat[0]);
    field("p50_ns", lat[rank(ops, 500)]);
    field("p90_ns", lat[rank(ops, 900)]);
    field("p99_ns", lat[rank(ops, 990)]);
    field("max_ns", lat[ops - 1]);
    field("mean_ns", sum / ops);
    flush_line();
    return 0;
}

/* The kernel's entry: argc at the stack pointer, argv after it. */
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov (%rsp), %rdi\n  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n  call cmain\n  mov %rax, %rdi\n  mov $231, %rax\n  syscall\n");
